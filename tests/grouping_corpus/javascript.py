"""JavaScript: Node/Express, browser bundles (webpack hex hashes, Vite base64 hashes), minified
code without source maps, Firefox stacks."""

from tests.grouping_corpus.model import Cluster, variants

_EXPRESS = """\
TypeError: Cannot read properties of undefined (reading 'id')
    at {func} ({root}/src/services/users.js:{l1}:17)
    at async Promise.all (index 0)
    at async loadProfile ({root}/src/routes/profile.js:{l2}:5)
    at Layer.handle [as handle_request] ({root}/node_modules/express/lib/router/layer.js:95:5)
    at next ({root}/node_modules/express/lib/router/route.js:{l3}:13)
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)
"""
_NODE_ROOTS = [{"root": "/srv/app"}, {"root": "/var/www/app-v2"}, {"root": "/app"}]
_LINES = [{"l1": 42, "l2": 17, "l3": 149}, {"l1": 45, "l2": 19, "l3": 149},
          {"l1": 51, "l2": 19, "l3": 144}]

_MINIFIED = """\
TypeError: {text}
    at e (https://{host}/assets/index.{hash}.js:1:{c1})
    at t (https://{host}/assets/index.{hash}.js:1:{c2})
    at n (https://{host}/assets/vendor.{vhash}.js:2:311)
    at HTMLButtonElement.r (https://{host}/assets/vendor.{vhash}.js:2:8812)
"""
_BUILDS = [{"hash": "4f3c2a1b", "vhash": "9a8b7c6d", "c1": 10211, "c2": 9812,
            "host": "app.example.com"},
           {"hash": "e1d2c3b4", "vhash": "9a8b7c6d", "c1": 10388, "c2": 9990,
            "host": "app.example.com"},
           {"hash": "77aa01bc", "vhash": "0f1e2d3c", "c1": 9001, "c2": 8800,
            "host": "cdn-2.example.net"}]

_VITE = """\
TypeError: Cannot read properties of null (reading 'name')
    at {func} (https://app.example.com/assets/index-{hash}.js:{l1}:345)
    at loadPage (https://app.example.com/assets/index-{hash}.js:{l2}:12)
    at async Router.navigate (https://app.example.com/assets/vendor-{vhash}.js:3:1870)
"""
_VITE_BUILDS = [{"hash": "DiwrgTda", "vhash": "Bx9kLm2Q", "l1": 12, "l2": 40},
                {"hash": "BQfr2X0u", "vhash": "Bx9kLm2Q", "l1": 12, "l2": 41},
                {"hash": "C-3a_Zq9", "vhash": "D4nP0wEr", "l1": 13, "l2": 41}]

_FIREFOX = """\
{func}@https://app.example.com/static/js/main.{hash}.js:{l1}:4211
loadProfile@https://app.example.com/static/js/main.{hash}.js:2:{l2}
promiseReactionJob@[native code]
@https://app.example.com/static/js/vendor.{vhash}.js:1:{l3}
"""
_FF_BUILDS = [{"hash": "3f2a1b9c", "vhash": "aa11bb22", "l1": 1, "l2": 880, "l3": 17},
              {"hash": "8e1d44a0", "vhash": "cc33dd44", "l1": 1, "l2": 912, "l3": 21}]

_UNHANDLED = """\
Error: connect ECONNREFUSED 10.0.{a}.{b}:5432
    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1595:16)
    at {root}/node_modules/pg-pool/index.js:45:11
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)
    at async {func} ({root}/dist/jobs/{file}.js:{l1}:20)
    at async runJob ({root}/dist/jobs/runner.js:{l2}:7)
"""

CLUSTERS = [
    Cluster("js-users-getuser", "javascript", _EXPRESS, "TypeError",
            variants(_NODE_ROOTS, _LINES, func="getUser")),
    Cluster("js-users-getaccount", "javascript", _EXPRESS, "TypeError",
            variants(_NODE_ROOTS, _LINES, func="getAccount")),
    Cluster("js-minified-undefined", "javascript", _MINIFIED, "TypeError",
            variants(_BUILDS, text="x is undefined", error_message="x is undefined")),
    Cluster("js-minified-not-a-function", "javascript", _MINIFIED, "TypeError",
            variants(_BUILDS, text="y.map is not a function",
                     error_message="y.map is not a function")),
    Cluster("js-vite-render-profile", "javascript", _VITE, "TypeError",
            variants(_VITE_BUILDS, func="renderProfile")),
    Cluster("js-vite-render-settings", "javascript", _VITE, "TypeError",
            variants(_VITE_BUILDS, func="renderSettings")),
    Cluster("js-firefox-getuser", "javascript", _FIREFOX, "TypeError",
            variants(_FF_BUILDS, func="getUser")),
    Cluster("js-firefox-getaccount", "javascript", _FIREFOX, "TypeError",
            variants(_FF_BUILDS, func="getAccount")),
    Cluster("js-pg-refused-nightly", "javascript", _UNHANDLED, "Error",
            variants(_NODE_ROOTS, [{"a": 3, "b": 7, "l1": 12, "l2": 30},
                                   {"a": 4, "b": 19, "l1": 12, "l2": 31}],
                     func="nightlyReport", file="report")),
    Cluster("js-pg-refused-cleanup", "javascript", _UNHANDLED, "Error",
            variants(_NODE_ROOTS[:2], [{"a": 3, "b": 7, "l1": 8, "l2": 30}],
                     func="cleanupSessions", file="cleanup")),
]
