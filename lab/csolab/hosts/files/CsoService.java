// The CSO stand-in (lab fixture, test-only): reads setup.properties, keeps JDBC pools with
// Debian's MariaDB driver (or, with cso_db_auth=iam, the AWS JDBC Wrapper and MySQL Connector/J the
// cso_db role installs in /opt/cso/lib/jdbc, on the class path after it), all through DriverManager, and
// answers GET /health through the database.
//
// Read/write split, as CSO does it: writes go through db.url (its pool), reads through
// db.read.url with db.read.username/db.read.password (a second pool, same db.pool.* settings)
// when setup.properties has db.read.url, else through the write pool. GET /health makes one
// request on each path, so a probe on /health exercises both: a write (the validation query, then
// an upsert of this host's row in ssp.cso_heartbeat on the write pool) and a read (the validation
// query on the read pool). Each path then reads @@server_id and @@read_only, and a 200 answers
// "OK " and one JSON line naming the server each path landed on:
//   OK {"write": {"server_id": 1, "read_only": 0}, "read": {"server_id": 2, "read_only": 1, "split": true}}
//
// Pool settings follow setup.properties (db.pool.maxActive/maxIdle/minIdle/testOnBorrow/
// validationQuery). One lab-only addition, db.pool.maxAgeSeconds (default 5): a connection older
// than that is closed and reopened, so a database that starts requiring TLS breaks the service
// within seconds instead of when a production pool would eventually recycle.
//
// Under systemd socket activation (cso.socket, StandardInput=socket) the listening socket is
// inherited on stdin and stays open in systemd across a restart: requests that arrive while the
// JVM restarts wait in the socket's backlog instead of being refused. Started by hand, it binds
// http.port itself.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.FileInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.channels.Channel;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

public class CsoService {
    static final class Pooled {
        final Connection connection;
        final long openedAt = System.nanoTime();

        Pooled(Connection connection) {
            this.connection = connection;
        }

        boolean tooOld(long maxAgeNanos) {
            return System.nanoTime() - openedAt > maxAgeNanos;
        }
    }

    static final class Pool {
        private final String url;
        private final Properties credentials = new Properties();
        private final int maxIdle;
        private final int minIdle;
        private final boolean testOnBorrow;
        private final String validationQuery;
        private final long maxAgeNanos;
        private final Semaphore active;
        private final Deque<Pooled> idle = new ArrayDeque<>();

        /** The pool of db.url (prefix "db.") or of db.read.url (prefix "db.read."); db.pool.* for both. */
        Pool(Properties setup, String prefix) {
            url = setup.getProperty(prefix + "url");
            credentials.setProperty("user", setup.getProperty(prefix + "username", ""));
            credentials.setProperty("password", setup.getProperty(prefix + "password", ""));
            credentials.setProperty("connectTimeout", setup.getProperty("db.pool.connectTimeoutMillis", "3000"));
            credentials.setProperty("socketTimeout", setup.getProperty("db.pool.socketTimeoutMillis", "5000"));
            active = new Semaphore(Integer.parseInt(setup.getProperty("db.pool.maxActive", "8")));
            maxIdle = Integer.parseInt(setup.getProperty("db.pool.maxIdle", "4"));
            minIdle = Integer.parseInt(setup.getProperty("db.pool.minIdle", "0"));
            testOnBorrow = Boolean.parseBoolean(setup.getProperty("db.pool.testOnBorrow", "true"));
            validationQuery = setup.getProperty("db.pool.validationQuery", "SELECT 1");
            maxAgeNanos = TimeUnit.SECONDS.toNanos(Long.parseLong(setup.getProperty("db.pool.maxAgeSeconds", "5")));
        }

        private Pooled open() throws SQLException {
            return new Pooled(DriverManager.getConnection(url, credentials));
        }

        private static void closeQuietly(Pooled pooled) {
            try {
                pooled.connection.close();
            } catch (SQLException ignored) {
                // already broken
            }
        }

        private boolean valid(Pooled pooled) {
            try (Statement statement = pooled.connection.createStatement()) {
                statement.execute(validationQuery);
                return true;
            } catch (SQLException broken) {
                return false;
            }
        }

        private synchronized Pooled takeIdle() {
            return idle.pollFirst();
        }

        Pooled borrow() throws SQLException, InterruptedException {
            if (!active.tryAcquire(5, TimeUnit.SECONDS)) {
                throw new SQLException("pool exhausted");
            }
            try {
                for (Pooled pooled = takeIdle(); pooled != null; pooled = takeIdle()) {
                    if (!pooled.tooOld(maxAgeNanos) && (!testOnBorrow || valid(pooled))) {
                        return pooled;
                    }
                    closeQuietly(pooled);
                }
                return open();
            } catch (SQLException | RuntimeException failure) {
                active.release();
                throw failure;
            }
        }

        void giveBack(Pooled pooled, boolean broken) {
            active.release();
            synchronized (this) {
                if (!broken && !pooled.tooOld(maxAgeNanos) && idle.size() < maxIdle) {
                    idle.addFirst(pooled);
                    return;
                }
            }
            closeQuietly(pooled);
        }

        /** Evicts aged connections and keeps minIdle open, as a pool's evictor thread does. */
        void maintain() {
            Deque<Pooled> aged = new ArrayDeque<>();
            synchronized (this) {
                idle.removeIf(pooled -> pooled.tooOld(maxAgeNanos) && aged.add(pooled));
            }
            aged.forEach(Pool::closeQuietly);
            while (idleCount() < minIdle) {
                try {
                    Pooled fresh = open();
                    synchronized (this) {
                        idle.addLast(fresh);
                    }
                } catch (SQLException failure) {
                    System.err.println("pool: cannot open a connection: " + failure.getMessage());
                    return;
                }
            }
        }

        private synchronized int idleCount() {
            return idle.size();
        }
    }

    /** Both paths: a write through the write pool, a read through the read pool (may be the same pool). */
    static final class Service {
        final Pool writes;
        final Pool reads;
        final String host;

        Service(Pool writes, Pool reads, String host) {
            this.writes = writes;
            this.reads = reads;
            this.host = host;
        }
    }

    static final String HEARTBEAT_TABLE = "CREATE TABLE IF NOT EXISTS cso_heartbeat "
        + "(host VARCHAR(64) PRIMARY KEY, beats BIGINT NOT NULL, at TIMESTAMP(6) NOT NULL)";

    /** One request on a pool: the validation query, then the path's own statement; the server it ran on. */
    static String onPool(Pool pool, boolean write, String host) throws Exception {
        Pooled pooled = pool.borrow();
        boolean broken = true;
        try (Statement statement = pooled.connection.createStatement()) {
            try (ResultSet result = statement.executeQuery(pool.validationQuery)) {
                result.next();
            }
            if (write) {
                String upsert = "INSERT INTO cso_heartbeat VALUES ('" + host.replace("'", "") + "', 1, NOW(6)) "
                    + "ON DUPLICATE KEY UPDATE beats = beats + 1, at = NOW(6)";
                try {
                    statement.executeUpdate(upsert);
                } catch (SQLException missing) {
                    if (missing.getErrorCode() != 1146) {  // ER_NO_SUCH_TABLE: first write of this schema
                        throw missing;
                    }
                    statement.execute(HEARTBEAT_TABLE);
                    statement.executeUpdate(upsert);
                }
            }
            try (ResultSet result = statement.executeQuery("SELECT @@server_id, @@read_only")) {
                result.next();
                broken = false;
                return "{\"server_id\": " + result.getLong(1) + ", \"read_only\": " + result.getInt(2);
            }
        } finally {
            pool.giveBack(pooled, broken);
        }
    }

    static String check(Service service) throws Exception {
        String write = onPool(service.writes, true, service.host) + "}";
        String read = onPool(service.reads, false, service.host) + ", \"split\": " + (service.reads != service.writes) + "}";
        return "OK {\"write\": " + write + ", \"read\": " + read + "}";
    }

    static void answer(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = (body + "\n").getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    static String health(Service pool) {
        try {
            return "200 " + check(pool);
        } catch (Exception failure) {
            return "503 DB check failed: " + failure;
        }
    }

    /** Minimal HTTP/1.1 on the socket systemd hands over: GET /health, one request per connection. */
    static void serve(ServerSocketChannel listener, Service pool) throws IOException {
        ExecutorService workers = Executors.newFixedThreadPool(4);
        Thread acceptor = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> stopServing(listener, acceptor, workers)));
        try {
            while (true) {
                Socket client = listener.accept().socket();
                workers.execute(() -> respond(client, pool));
            }
        } catch (ClosedChannelException stopping) {
            // the shutdown hook closed our copy of the socket
        }
    }

    /**
     * Graceful stop: close this JVM's copy of the listening socket first (systemd keeps its own, so
     * new connections wait in the backlog for the next JVM), let the acceptor hand over a connection
     * it took just before the close, then finish every accepted request.
     */
    static void stopServing(ServerSocketChannel listener, Thread acceptor, ExecutorService workers) {
        try {
            listener.close();
            acceptor.join(2000);
            workers.shutdown();
            workers.awaitTermination(10, TimeUnit.SECONDS);
        } catch (IOException | InterruptedException ignored) {
            Thread.currentThread().interrupt();
        }
    }

    static void respond(Socket client, Service pool) {
        try (client) {
            client.setSoTimeout(10000);
            BufferedReader in = new BufferedReader(new InputStreamReader(client.getInputStream(), StandardCharsets.ISO_8859_1));
            String requestLine = in.readLine();
            for (String header = in.readLine(); header != null && !header.isEmpty(); header = in.readLine()) {
                // headers are not used
            }
            String[] parts = requestLine == null ? new String[0] : requestLine.split(" ");
            String answer = parts.length >= 2 && parts[0].equals("GET") && parts[1].equals("/health")
                ? health(pool) : "404 not found";
            int space = answer.indexOf(' ');
            byte[] body = (answer.substring(space + 1) + "\n").getBytes(StandardCharsets.UTF_8);
            String status = answer.substring(0, space);
            String head = "HTTP/1.1 " + status + (status.equals("200") ? " OK" : " Error") + "\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + body.length
                + "\r\nConnection: close\r\n\r\n";
            OutputStream out = client.getOutputStream();
            out.write(head.getBytes(StandardCharsets.ISO_8859_1));
            out.write(body);
            out.flush();
        } catch (IOException ignored) {
            // the client went away
        }
    }

    static String redact(String url) {
        return url == null ? null : url.replaceAll("(?i)(password=)[^&]*", "$1***");
    }

    public static void main(String[] args) throws Exception {
        String setupPath = args.length > 0 ? args[0] : "/opt/cso/setup.properties";
        Properties setup = new Properties();
        try (FileInputStream in = new FileInputStream(setupPath)) {
            setup.load(in);
        }
        Pool writes = new Pool(setup, "db.");
        String readUrl = setup.getProperty("db.read.url", "").trim();
        Pool reads = readUrl.isEmpty() ? writes : new Pool(setup, "db.read.");
        String host = System.getenv().getOrDefault("HOSTNAME", "");
        if (host.isEmpty()) {
            try {
                host = java.net.InetAddress.getLocalHost().getHostName();
            } catch (IOException unresolved) {
                host = "cso";
            }
        }
        Service pool = new Service(writes, reads, host);
        Executors.newSingleThreadScheduledExecutor().scheduleWithFixedDelay(writes::maintain, 0, 1, TimeUnit.SECONDS);
        if (reads != writes) {
            Executors.newSingleThreadScheduledExecutor().scheduleWithFixedDelay(reads::maintain, 0, 1, TimeUnit.SECONDS);
        }
        Channel inherited = System.inheritedChannel();
        if (inherited instanceof ServerSocketChannel listener) {
            System.out.println("cso: serving the socket systemd passed, database " + redact(setup.getProperty("db.url"))
                + (reads != writes ? ", reads " + redact(readUrl) : ""));
            serve(listener, pool);
            return;
        }
        int port = Integer.parseInt(setup.getProperty("http.port", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 16);
        server.createContext("/health", exchange -> {
            String answer = health(pool);
            int space = answer.indexOf(' ');
            answer(exchange, Integer.parseInt(answer.substring(0, space)), answer.substring(space + 1));
        });
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.start();
        System.out.println("cso: listening on :" + port + ", database " + redact(setup.getProperty("db.url"))
            + (reads != writes ? ", reads " + redact(readUrl) : ""));
    }
}
