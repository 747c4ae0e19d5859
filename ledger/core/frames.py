"""Stack frames reduced to what identifies code, whichever way they arrived (DESIGN §6).

A frame arrives either as a line of a printed stack trace (``ledger.core.stacktraces``) or as
a structured frame of a Sentry-shaped ``exceptions`` value (``ledger.core.exception_values``).
Both go through the functions here, so the same code location gets the same identity either
way, and an error groups the same whichever protocol carried it.

Identity (``module``, ``function``), never line numbers or deployment directories:

- Python, JavaScript, Ruby and other path-based code: the *module path* — the file's stem and
  its parent directory (``/srv/app/users/views.py`` → ``users/views``), so that two
  ``views.py:post`` in different packages stay apart. A parent that is a generic deployment
  directory (``app``, ``src``, ``dist`` …) or volatile (a release timestamp) is dropped, so that
  ``/app/main.py`` and ``/srv/releases/2024/main.py`` stay together. Content hashes of bundles
  (``index.4f3c2a1b.js``, Vite's ``index-DiwrgTda.js``) are removed from the stem.
- JVM and .NET: the fully qualified class (``com.acme.users.UserService``).
- Go: the package import path (``github.com/acme/shop/billing``), which does not depend on
  where the code was built.

In-app: the SDK's ``in_app`` flag when given; otherwise the defaults below (standard library,
package managers' directories, well-known frameworks and drivers, versioned Go module paths);
a project's include/exclude setting (``InAppRules``) overrides both.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = [
    "Frame",
    "InAppRules",
    "frame_identity",
    "module_path",
    "stable_name",
]

#: Longest name kept from a path, module or function; the rest never distinguishes code.
MAX_NAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack frame, reduced to what identifies code rather than a deployment.

    Attributes:
        module: Module path, class or package (``users/views``, ``com.acme.UserService``).
        function: Function or method name.
        in_app: False for third-party and standard-library code.
    """

    module: str
    function: str
    in_app: bool


@dataclass(frozen=True, slots=True)
class RawFrame:
    """A frame as parsed, before its identity is computed.

    The identity (``frame()``) costs a few microseconds (module paths, bundle hashes, volatile
    names) and only the innermost in-app frames contribute to a fingerprint, so it is computed
    only for the frames that are used.
    """

    kind: str  # python, js, jvm, go, ruby, other (see kind_of) or eval
    path: str
    module: str
    function: str
    in_app: bool

    def frame(self) -> Frame:
        """The frame's identity and in-app flag."""
        if self.kind == "eval":
            return Frame("<eval>", js_function(self.function), False)
        module, function = frame_identity(self.kind, path=self.path, module=self.module,
                                          function=self.function)
        return Frame(module, function, self.in_app)

    def with_in_app(self, in_app: bool) -> RawFrame:
        """The same frame with another in-app flag."""
        return RawFrame(self.kind, self.path, self.module, self.function, in_app)


@dataclass(frozen=True, slots=True)
class InAppRules:
    """A project's in-app setting: prefixes of modules, classes or paths.

    A frame whose module identity starts with, or whose raw path contains, one of ``exclude``
    is not in-app; otherwise one matching ``include`` is. Exclude wins, and both win over the
    SDK's flag and the defaults.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def decide(self, module: str, path: str) -> bool | None:
        """True/False when a rule applies to the frame, None when none does."""
        if self.exclude and _matches(self.exclude, module, path):
            return False
        if self.include and _matches(self.include, module, path):
            return True
        return None


def _matches(prefixes: tuple[str, ...], module: str, path: str) -> bool:
    return module.startswith(prefixes) or any(p in path for p in prefixes)


# --------------------------------------------------------------------------------------------
# Volatile names
# --------------------------------------------------------------------------------------------

# Names that change between runs of the same code: JVM lambda and proxy classes, reflection
# accessors, compiled ERB template methods, long numbers.
_VOLATILE_NAME = re.compile(
    r"(?P<lambda>\$\$Lambda(?:\$\d+)?(?:/0x[0-9a-fA-F]+)?)"
    r"|(?P<accessor>(?<=GeneratedMethodAccessor)\d+|(?<=GeneratedConstructorAccessor)\d+)"
    r"|(?P<hex>0x[0-9a-fA-F]+|(?<![0-9A-Za-z])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])"
    r"[0-9a-fA-F]{8,}(?![0-9A-Za-z]))"
    r"|(?P<num>\d{5,})"
)
_VOLATILE_REPLACEMENT = {"lambda": "$$Lambda", "accessor": "", "hex": "<hex>", "num": "<num>"}


@functools.lru_cache(maxsize=8192)  # the same code locations recur on every event
def stable_name(name: str) -> str:
    """``name`` (at most ``MAX_NAME_CHARS``) with run-specific parts replaced by placeholders."""
    name = name[:MAX_NAME_CHARS]
    return _VOLATILE_NAME.sub(lambda m: _VOLATILE_REPLACEMENT[m.lastgroup or "num"], name)


# --------------------------------------------------------------------------------------------
# Module paths
# --------------------------------------------------------------------------------------------

# Directories that say where code was deployed, not which code it is.
_GENERIC_DIRS = frozenset((
    "", ".", "app", "apps", "src", "lib", "srv", "opt", "code", "current", "deploy", "home",
    "usr", "local", "var", "www", "dist", "build", "out", "bin", "tmp", "workspace", "project",
    "static", "assets", "js", "public", "site-packages", "dist-packages", "node_modules",
    "_next", "chunks", "root", "mnt", "data", "runner", "work", "releases", "release", "webpack:",
))
_SOURCE_EXTENSIONS = (".py", ".pyc", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts",
                      ".cts", ".rb", ".go", ".java", ".kt", ".scala", ".groovy", ".cs", ".php",
                      ".erb", ".vue", ".svelte", ".coffee")
_SOURCE_EXTENSION_SET = frozenset(_SOURCE_EXTENSIONS)
_BUNDLE_SUFFIXES = (".chunk", ".bundle", ".min", ".esm", ".prod", ".production")
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = frozenset("0123456789abcdefABCDEF")


def _is_content_hash(segment: str) -> bool:
    """Whether the last part of a bundle's name is a content hash (webpack hex, Vite base64)."""
    if len(segment) >= 6 and all(c in _HEX for c in segment):
        return any(c.isdigit() for c in segment)
    if len(segment) == 8 and all(c in _BASE64URL for c in segment):
        # Vite/Rollup/esbuild: 8 base64url characters. A lowercase word ("services") is a name;
        # anything with an uppercase letter after the first or a digit is taken for a hash.
        return any(c.isdigit() for c in segment) or any(c.isupper() for c in segment[1:])
    return False


def _strip_bundle_hash(stem: str) -> str:
    suffix = ""
    for known in _BUNDLE_SUFFIXES:
        if stem.endswith(known) and len(stem) > len(known):
            stem, suffix = stem[: -len(known)], known
            break
    for _ in range(2):  # `main.4f3c2a1b`, and a hash of each of two build steps
        # Vite's base64url hash may itself contain "-" or "_": try the fixed 8-char tail first.
        if len(stem) > 9 and stem[-9] in ".-" and _is_content_hash(stem[-8:]):
            stem = stem[:-9]
            continue
        sep = max(stem.rfind("."), stem.rfind("-"))
        if sep <= 0 or not _is_content_hash(stem[sep + 1:]):
            break
        stem = stem[:sep]
    return stem + suffix


def _is_volatile_dir(name: str) -> bool:
    digits = sum(c.isdigit() for c in name)
    return digits >= 4 or (len(name) >= 8 and all(c in _HEX for c in name) and digits > 0)


@functools.lru_cache(maxsize=8192)
def module_path(path: str) -> str:
    """The module path of a source file: its stem and its parent directory.

    ``/srv/app/users/views.py`` → ``users/views``; ``https://cdn.example/assets/index-DiwrgTda.js``
    → ``index``; ``C:\\deploy\\app\\billing.py`` → ``billing``.
    """
    path = path[:1024].replace("\\", "/")
    path = path.partition("?")[0].partition("#")[0]
    scheme = path.find("://")
    if 0 < scheme < 16:
        rest = path[scheme + 3:]
        # Drop the host: `https://cdn-3.example.com/...` differs between deploys.
        path = rest[rest.find("/"):] if "/" in rest else rest
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    if not parts:
        return stable_name(path)
    name = parts[-1]
    stem, dot, extension = name.rpartition(".")
    if dot and stem and f".{extension.lower()}" in _SOURCE_EXTENSION_SET:
        name = stem
    name = _strip_bundle_hash(name) if name else name
    parent = parts[-2] if len(parts) >= 2 else ""
    if (parent.lower() in _GENERIC_DIRS or _is_volatile_dir(parent)
            or (len(parent) == 2 and parent[1] == ":")):  # a Windows drive
        return stable_name(name)
    return stable_name(f"{parent}/{name}")


def dotted_module_path(module: str) -> str:
    """A dotted module (``myproj.users.views``) as a module path (``users/views``)."""
    parts = module.split(".")
    return module_path("/".join(parts[-2:]) + ".py") if len(parts) > 1 else module_path(module)


# --------------------------------------------------------------------------------------------
# In-app defaults, per kind of code
# --------------------------------------------------------------------------------------------


def python_in_app(path: str) -> bool:
    """Not the standard library, a virtualenv's packages or frozen modules."""
    # Substring tests: ~8x faster than one case-insensitive regex search with alternatives.
    if (
        "site-packages" in path
        or "dist-packages" in path
        or "/lib/python3" in path
        or "/lib/python2" in path
        or "/lib/pypy" in path
        or "/lib-python/" in path
        or path.startswith("<frozen ")
    ):
        return False
    if "\\" in path:
        lowered = path.lower()
        return not ("\\lib\\" in lowered and "python" in lowered)
    return True


# The JDK and widely used frameworks, drivers and clients. Without a project's setting the app's
# own package is unknown, so "not one of these" is the best guess at in-app.
_JVM_NOT_APP = (
    "java.", "javax.", "jakarta.", "sun.", "com.sun.", "jdk.", "kotlin.", "kotlinx.", "scala.",
    "groovy.", "clojure.", "org.springframework.", "org.apache.", "org.hibernate.",
    "org.eclipse.", "org.junit.", "org.gradle.", "org.glassfish.", "io.netty.", "reactor.",
    "com.google.", "com.fasterxml.", "net.bytebuddy.", "org.postgresql.", "com.mysql.",
    "org.mariadb.", "oracle.", "com.microsoft.sqlserver.", "org.h2.", "org.sqlite.",
    "com.zaxxer.", "ch.qos.logback.", "org.slf4j.", "okhttp3.", "okio.", "retrofit2.",
    "io.grpc.", "io.undertow.", "org.jboss.", "org.wildfly.", "com.amazonaws.",
    "software.amazon.", "redis.clients.", "io.lettuce.", "org.redisson.", "com.mongodb.",
    "org.mongodb.", "org.bson.", "com.datastax.", "org.neo4j.", "org.elasticsearch.",
    "co.elastic.", "com.rabbitmq.", "org.jooq.", "org.mybatis.", "org.flywaydb.", "liquibase.",
    "io.micrometer.", "io.opentelemetry.", "io.sentry.", "feign.", "io.github.resilience4j.",
    "com.netflix.", "io.vertx.", "akka.", "io.quarkus.", "io.micronaut.", "io.reactivex.",
    "rx.", "org.reactivestreams.", "org.aspectj.", "org.thymeleaf.", "freemarker.",
    "org.codehaus.", "org.objectweb.", "org.jetbrains.", "org.mockito.", "org.testng.",
    "org.yaml.", "com.squareup.", "com.github.benmanes.", "io.jsonwebtoken.", "org.keycloak.",
    "org.quartz.", "org.xml.", "org.w3c.", "org.json.", "android.", "androidx.", "dalvik.",
    "com.android.", "io.ktor.", "com.ibm.", "weblogic.", "org.jvnet.", "net.sf.", "ognl.",
    "org.osgi.", "$Proxy", "System.", "Microsoft.", "Npgsql.", "Newtonsoft.",
)


@functools.lru_cache(maxsize=8192)
def jvm_in_app(cls: str) -> bool:
    """Not the JDK or a well-known library (by package prefix)."""
    return not cls.startswith(_JVM_NOT_APP)


_JS_NOT_APP_PREFIXES = ("node:", "internal/", "<anonymous>", "native", "index ", "eval at ",
                        "[", "webpack/", "<")


def js_in_app(file: str) -> bool:
    """Not Node's internals, ``node_modules``, a bundler's runtime or a browser extension."""
    return not (
        file.startswith(_JS_NOT_APP_PREFIXES)
        or "node_modules" in file
        or "webpack/bootstrap" in file
        or "webpack/runtime" in file
        or "-extension://" in file
        or "/@vite/" in file
        or "/.pnpm/" in file
        or "/.yarn/" in file
    )


# Top-level packages of the Go standard library (plus the builtin `panic`): their frames are not
# in-app wherever GOROOT happens to live.
# fmt: off
_GO_STDLIB = frozenset((
    "archive", "bufio", "builtin", "bytes", "cmp", "compress", "container", "context", "crypto",
    "database", "debug", "embed", "encoding", "errors", "expvar", "flag", "fmt", "go", "hash",
    "html", "image", "index", "internal", "io", "iter", "log", "maps", "math", "mime", "net", "os",
    "panic", "path", "plugin", "reflect", "regexp", "runtime", "slices", "sort", "strconv",
    "strings", "structs", "sync", "syscall", "testing", "text", "time", "unicode", "unique",
    "unsafe", "weak",
))
# fmt: on
_GO_VERSIONED = re.compile(r"@v\d")


def go_in_app(package: str, path: str) -> bool:
    """Not the standard library, the module cache, ``vendor/`` or a versioned module path.

    With ``-trimpath`` a dependency's file is printed as ``github.com/lib/pq@v1.10.9/conn.go``
    (no ``/pkg/mod/``): the ``@v<digit>`` of a module version is what marks it third-party.
    """
    top = package.partition("/")[0].lower()
    return not (
        top in _GO_STDLIB
        or "/usr/local/go/src/" in path
        or "/usr/lib/go" in path
        or "/pkg/mod/" in path
        or "/vendor/" in path
        or "/src/runtime/" in path
        or ("@v" in path and _GO_VERSIONED.search(path) is not None)
        or ("@v" in package and _GO_VERSIONED.search(package) is not None)
    )


# Rails' backtrace cleaner prints gem frames as `activerecord (7.1.3) lib/active_record/...`.
_RUBY_CLEANED_GEM = re.compile(r"[\w.\-]+ \([\w.\-]+\) ")


def ruby_in_app(path: str) -> bool:
    """Not a gem (installed or as Rails' cleaner prints it), the Ruby library or internals."""
    return not (
        path.startswith(("<internal:", "<main>", "[GEM_ROOT]", "[PROJECT_ROOT]/vendor"))
        or "/gems/" in path
        or "/bundle/" in path
        or "/vendor/" in path
        or "/rubies/" in path
        or "/lib/ruby/" in path
        or "/.rbenv/" in path
        or "/.rvm/" in path
        or "/rubygems/" in path
        or ("(" in path and _RUBY_CLEANED_GEM.match(path) is not None)
    )


_RUBY_QUALIFIER = re.compile(r"[A-Z][\w:]*[#.](?=[^#.\s]+$)")


def ruby_function(label: str) -> str:
    """Ruby 3.4 labels frames ``User#save`` where older versions said ``save``: drop the class
    qualifier so that upgrading Ruby does not reopen every error group."""
    return _RUBY_QUALIFIER.sub("", label[:MAX_NAME_CHARS])


def js_function(func: str) -> str:
    """``async Foo.bar [as baz]`` → ``Foo.bar``; ``Object.<anonymous>``/``?`` → ``<anonymous>``."""
    func = func[:MAX_NAME_CHARS]
    if func.startswith("async "):
        func = func[6:]
    if func.startswith("new "):
        func = func[4:]
    alias = func.find(" [as ")
    if alias >= 0:
        func = func[:alias]
    if func.startswith("Object."):
        func = func[7:]
    if func in ("", "?", "Object.<anonymous>", "<anonymous>"):
        return "<anonymous>"
    return func


# --------------------------------------------------------------------------------------------
# One identity for both sources
# --------------------------------------------------------------------------------------------

_JVM_EXTENSIONS = (".java", ".kt", ".kts", ".scala", ".groovy", ".clj", ".cs", ".fs", ".vb")
_JS_EXTENSIONS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts", ".vue",
                  ".svelte", ".coffee")


def kind_of(path: str, module: str, platform: str | None) -> str:
    """Which family a structured frame belongs to: python, js, jvm, go, ruby or other."""
    lowered = path.lower().partition("?")[0]
    if lowered.endswith((".py", ".pyc")):
        return "python"
    if lowered.endswith(_JS_EXTENSIONS) or lowered.startswith(("http://", "https://", "app://")):
        return "js"
    if lowered.endswith(".go"):
        return "go"
    if lowered.endswith((".rb", ".erb", ".rake")):
        return "ruby"
    if lowered.endswith(_JVM_EXTENSIONS):
        return "jvm"
    family = {"python": "python", "javascript": "js", "node": "js", "java": "jvm",
              "csharp": "jvm", "go": "go", "ruby": "ruby"}.get((platform or "").lower())
    if family:
        return family
    if not path and module.count(".") >= 2:
        return "jvm"
    return "other"


def default_in_app(kind: str, path: str, module: str) -> bool:
    """The default in-app guess for a frame of ``kind`` (see ``kind_of``)."""
    if kind == "python":
        return python_in_app(path) if path else not module.startswith(("_", "importlib"))
    if kind == "js":
        return js_in_app(path) if path else True
    if kind == "jvm":
        return jvm_in_app(module)
    if kind == "go":
        return go_in_app(module, path)
    if kind == "ruby":
        return ruby_in_app(path) if path else True
    return not ("/vendor/" in path or "node_modules" in path or "site-packages" in path)


def frame_identity(kind: str, *, path: str, module: str, function: str) -> tuple[str, str]:
    """The (module, function) identity of a frame of ``kind``, from whatever fields it has."""
    if kind == "jvm":
        cls = module or _jvm_class_from_function(function)
        if cls and not module:
            function = function[len(cls) + 1:]
        return stable_name(cls), stable_name(function)
    if kind == "go":
        return stable_name(module), stable_name(function)
    if kind == "ruby":
        return (module_path(path) if path else dotted_module_path(module),
                stable_name(ruby_function(function)))
    if kind == "js":
        name = module_path(path) if path else dotted_module_path(module)
        return name, stable_name(js_function(function))
    if path:
        return module_path(path), stable_name(function[:MAX_NAME_CHARS])
    return dotted_module_path(module) if module else "", stable_name(function[:MAX_NAME_CHARS])


def _jvm_class_from_function(function: str) -> str:
    return function.rpartition(".")[0]


def split_go_function(qualified: str) -> tuple[str, str]:
    """``github.com/acme/shop/billing.(*Service).Charge`` → (package path, ``(*Service).Charge``).

    This is how Sentry's Go SDK splits it too (``module`` and ``function``).
    """
    slash = qualified.rfind("/")
    dot = qualified.find(".", slash + 1)
    if dot < 0:
        return qualified, ""
    return qualified[:dot], qualified[dot + 1:]
