"""Java: Spring + Hibernate chains with "... N more", Jedis root causes, lambdas and proxies,
Kotlin coroutines, logback decorations."""

from tests.grouping_corpus.model import Cluster, variants

_SPRING = """\
org.springframework.dao.DataIntegrityViolationException: could not execute statement; \
SQL [n/a]; constraint [users_email_key]; request {id}
\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException\
(HibernateJpaDialect.java:{s1})
\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.translateExceptionIfPossible\
(HibernateJpaDialect.java:233)
\tat com.acme.users.UserService.{func}(UserService.java:{l1})
\tat com.acme.users.UserService$$SpringCGLIB$$0.{func}(<generated>)
\tat com.acme.users.UserController.{caller}(UserController.java:{l2})
\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke\
(DirectMethodHandleAccessor.java:103)
\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)
\tat java.base/java.lang.Thread.run(Thread.java:{t})
Caused by: org.hibernate.exception.ConstraintViolationException: could not execute statement
\tat org.hibernate.exception.internal.SQLStateConversionDelegate.convert\
(SQLStateConversionDelegate.java:109)
\tat org.hibernate.engine.jdbc.spi.SqlExceptionHelper.convert(SqlExceptionHelper.java:113)
\tat com.acme.users.UserRepository.insert(UserRepository.java:{l3})
\t... 6 more
Caused by: org.postgresql.util.PSQLException: ERROR: duplicate key value violates unique \
constraint "users_email_key"
  Detail: Key (email)=(user{id}@example.com) already exists.
\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2725)
\tat org.postgresql.jdbc.PgPreparedStatement.executeUpdate(PgPreparedStatement.java:152)
\tat com.zaxxer.hikari.pool.HikariProxyPreparedStatement.executeUpdate\
(HikariProxyPreparedStatement.java)
\t... 3 more
"""
_JVM_EVENTS = [{"id": 1001, "l1": 57, "l2": 31, "l3": 88, "s1": 276, "t": 833},
               {"id": 98231, "l1": 61, "l2": 33, "l3": 90, "s1": 276, "t": 1583},
               {"id": 5, "l1": 61, "l2": 33, "l3": 91, "s1": 281, "t": 1583}]

_JEDIS = """\
{prefix}redis.clients.jedis.exceptions.JedisConnectionException: Failed to connect to any host \
resolved for DNS name.
\tat redis.clients.jedis.DefaultJedisSocketFactory.connectToFirstSuccessfulHost\
(DefaultJedisSocketFactory.java:63) ~[jedis-{v}.jar:na]
\tat redis.clients.jedis.DefaultJedisSocketFactory.createSocket(DefaultJedisSocketFactory.java:87)
\tat redis.clients.jedis.Connection.connect(Connection.java:{j1})
\tat redis.clients.jedis.Connection.sendCommand(Connection.java:126)
\tat redis.clients.jedis.Connection.executeCommand(Connection.java:{j2})
\tat redis.clients.jedis.executors.DefaultCommandExecutor.executeCommand\
(DefaultCommandExecutor.java:24)
\tat redis.clients.jedis.UnifiedJedis.executeCommand(UnifiedJedis.java:{j3})
\tat redis.clients.jedis.UnifiedJedis.get(UnifiedJedis.java:{j4})
\tat com.acme.{pkg}.{cls}.{method}({cls}.java:{l1}) ~[app.jar:1.4.2]
\tat com.acme.web.Router.dispatch(Router.java:{l2}) ~[app.jar:1.4.2]
\tat io.undertow.server.Connectors.executeRootHandler(Connectors.java:393)
\tat java.base/java.lang.Thread.run(Thread.java:1583)
"""
_JEDIS_EVENTS = [{"prefix": "", "v": "5.1.0", "j1": 179, "j2": 140, "j3": 188, "j4": 510,
                  "l1": 41, "l2": 88},
                 {"prefix": "2024-05-01 12:00:03.221 ERROR 1 --- [nio-8080-exec-4] "
                  "c.a.web.Router : request failed\n", "v": "5.1.2", "j1": 181, "j2": 142,
                  "j3": 190, "j4": 512, "l1": 44, "l2": 90}]

_LAMBDA = """\
java.lang.NullPointerException: Cannot invoke "String.length()" because "<local{n}>" is null
\tat com.acme.orders.OrderService.lambda${func}$0(OrderService.java:{l1})
\tat com.acme.orders.OrderService$$Lambda${n}/0x{addr}.apply(Unknown Source)
\tat java.base/java.util.stream.ReferencePipeline$3$1.accept(ReferencePipeline.java:197)
\tat java.base/java.util.ArrayList$ArrayListSpliterator.forEachRemaining(ArrayList.java:1625)
\tat jdk.internal.reflect.GeneratedMethodAccessor{n}.invoke(Unknown Source)
\tat com.acme.orders.OrderService.{func}(OrderService.java:{l2})
\tat com.acme.orders.OrderController$$EnhancerBySpringCGLIB${proxy}.list(<generated>)
"""
_LAMBDA_EVENTS = [{"n": 14, "addr": "0000000800066840", "proxy": "5e8a3b1f", "l1": 40, "l2": 31},
                  {"n": 97, "addr": "00007f00c0a1b2c8", "proxy": "9c1d77e2", "l1": 41,
                   "l2": 31},
                  {"n": 3, "addr": "0000000801c0d000", "proxy": "0a0b0c0d", "l1": 44, "l2": 35}]

CLUSTERS = [
    Cluster("java-register-duplicate", "java", _SPRING,
            "org.springframework.dao.DataIntegrityViolationException",
            variants(_JVM_EVENTS, func="register", caller="register")),
    Cluster("java-update-email-duplicate", "java", _SPRING,
            "org.springframework.dao.DataIntegrityViolationException",
            variants(_JVM_EVENTS, func="updateEmail", caller="update")),
    Cluster("java-jedis-cart", "java", _JEDIS,
            "redis.clients.jedis.exceptions.JedisConnectionException",
            variants(_JEDIS_EVENTS, pkg="cart", cls="CartCache", method="load")),
    Cluster("java-jedis-session", "java", _JEDIS,
            "redis.clients.jedis.exceptions.JedisConnectionException",
            variants(_JEDIS_EVENTS, pkg="session", cls="SessionStore", method="read")),
    Cluster("java-npe-total", "java", _LAMBDA, "java.lang.NullPointerException",
            variants(_LAMBDA_EVENTS, func="total")),
    Cluster("java-npe-discount", "java", _LAMBDA, "java.lang.NullPointerException",
            variants(_LAMBDA_EVENTS, func="discount")),
]
