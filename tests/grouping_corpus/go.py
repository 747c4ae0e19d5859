"""Go: panics with goroutine dumps, GOPATH and module-cache paths, -trimpath builds whose
dependencies show as versioned module paths."""

from tests.grouping_corpus.model import Cluster, variants

_NIL = """\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x{pc}]

goroutine {g} [running]:
github.com/acme/shop/internal/billing.(*Service).{func}(0x0, {{0xc00001{g}, 0x24}})
\t{root}/internal/billing/service.go:{l1} +0x1d
github.com/acme/shop/internal/api.(*Handler).CreateOrder(0xc0001a2000, {{0x7f1c2c, 0xc0002}})
\t{root}/internal/api/orders.go:{l2} +0x1a5
net/http.HandlerFunc.ServeHTTP(0x0?, {{0x6c1a10?, 0xc0000b4000?}}, 0xc000010000?)
\t{goroot}/src/net/http/server.go:2136 +0x29
net/http.(*conn).serve(0xc00012a000, {{0x6c2b58, 0xc0000a8000}})
\t{goroot}/src/net/http/server.go:2009 +0x612
created by net/http.(*Server).Serve in goroutine 1
\t{goroot}/src/net/http/server.go:3086 +0x5cb

goroutine 7 [IO wait]:
internal/poll.runtime_pollWait(0x7f2a, 0x72)
\t{goroot}/src/runtime/netpoll.go:343 +0x85
"""
_GO_BUILDS = [{"root": "/home/ci/work/shop", "goroot": "/usr/local/go", "g": 71, "pc": "4a1b2c",
               "l1": 42, "l2": 88},
              {"root": "/go/src/github.com/acme/shop", "goroot": "/usr/lib/go-1.22", "g": 1834,
               "pc": "4a1f00", "l1": 44, "l2": 91},
              {"root": "/build", "goroot": "/opt/hostedtoolcache/go/1.22.1/x64", "g": 9,
               "pc": "4a2000", "l1": 44, "l2": 91}]

_PQ = """\
panic: pq: canceling statement due to statement timeout

goroutine {g} [running]:
github.com/lib/pq.(*conn).errRecover(0xc000120000, 0xc000159a38)
\tgithub.com/lib/pq@{pq}/error.go:{p1} +0x2c5
panic({{0x8a2b40?, 0xc0001b2000?}})
\truntime/panic.go:770 +0x132
github.com/lib/pq.(*conn).query(0xc000120000, {{0x7a1b2c, 0x1f}}, {{0xc00011a000, 0x1, 0x1}})
\tgithub.com/lib/pq@{pq}/conn.go:{p2} +0x1d
github.com/lib/pq.(*conn).QueryContext(0xc000120000, {{0x9b0c20, 0xc0000b8000}})
\tgithub.com/lib/pq@{pq}/conn_go18.go:21 +0x1d
database/sql.ctxDriverQuery({{0x9b0c20?, 0xc0000b8000?}}, {{0x7f2a?, 0xc000120000?}})
\tdatabase/sql/ctxutil.go:48 +0xe2
github.com/acme/api/{pkg}.(*Store).{func}(0xc0001a2000, {{0x9b0c20, 0xc0000b8000}})
\tgithub.com/acme/api/{pkg}/store.go:{l1} +0x1a5
github.com/acme/api/{pkg}.(*Handler).{handler}(0xc0001a2000)
\tgithub.com/acme/api/{pkg}/http.go:{l2} +0x55
net/http.HandlerFunc.ServeHTTP(0x0?, {{0x6c1a10?, 0xc0000b4000?}}, 0xc000010000?)
\tnet/http/server.go:2166 +0x29
"""
_PQ_BUILDS = [{"g": 12, "pq": "v1.10.9", "p1": 17, "p2": 1012, "l1": 42, "l2": 20},
              {"g": 4411, "pq": "v1.10.9", "p1": 17, "p2": 1012, "l1": 45, "l2": 22},
              {"g": 3, "pq": "v1.10.7", "p1": 16, "p2": 1001, "l1": 45, "l2": 22}]

CLUSTERS = [
    Cluster("go-nil-charge", "go", _NIL, None, variants(_GO_BUILDS, func="Charge")),
    Cluster("go-nil-refund", "go", _NIL, None, variants(_GO_BUILDS, func="Refund")),
    # Same frames, another panic: a hard negative when the log carries no error type.
    Cluster("go-bounds-charge", "go", _NIL.replace(
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x{pc}]",
        "panic: runtime error: index out of range [{i}] with length {n}"), None,
        variants(_GO_BUILDS, [{"i": 5, "n": 3}, {"i": 12, "n": 0}], func="Charge")),
    Cluster("go-pq-timeout-users", "go", _PQ, "*pq.Error",
            variants(_PQ_BUILDS, pkg="users", func="List", handler="ListUsers")),
    Cluster("go-pq-timeout-orders", "go", _PQ, "*pq.Error",
            variants(_PQ_BUILDS, pkg="orders", func="Recent", handler="RecentOrders")),
]
