// Copyright: (c) 2026, cso.rds_hardening contributors
// GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Preflight of the cso_db role: prove that a JDBC URL gives an encrypted session whose server
// certificate and host name were verified, with the driver the application uses.
//
//   java -cp <driver class path> CsoDbCheck.java <url|-> <user> [--negatives] [--expect=primary|replica]
//
// The password is read from the environment variable CSO_DB_CHECK_PASSWORD, or from the first
// line of standard input when that variable is not set; with "-" as URL the URL is read from
// CSO_DB_CHECK_URL or the next line of standard input. Secrets never go on the command line.
// Prints one JSON object (no secrets). Exit codes: 0 verified TLS; 2 connected without TLS;
// 3 could not connect (reason in "reason"); 4 verification is not effective (a negative check
// connected); 5 a negative check could not be run or failed for a reason other than TLS; 6 the
// server is not what --expect says; 64 usage.
//
// Every report names the server the session landed on: "server_id" (@@server_id) and "read_only"
// (@@global.read_only, 0 or 1). With --expect=primary the server must be writable (read_only 0),
// with --expect=replica read-only (read_only 1, as an RDS read replica is); otherwise exit 6.
// Whether two URLs land on different servers (their server_id) is the caller's comparison.
//
// A cipher alone proves encryption, not verification. With --negatives, once the URL gave an
// encrypted session, the same URL must FAIL twice, with the same driver:
// - untrusted CA: the URL's truststore replaced by one holding only a CA this check generates
//   (keytool, in a temporary directory);
// - wrong host name: the URL's host:port replaced by localhost:<port of a relay this check runs
//   on the loopback interface to the real host:port> (the same server, through a name its
//   certificate does not carry; no DNS change on the host).
// A negative that connects means the driver did not verify the CA or the host name: exit 4.
//
// IAM database authentication (jdbc:aws-wrapper:mysql:... with wrapperPlugins=iam): the password is
// empty and the AWS Advanced JDBC Wrapper signs a token with the JVM's default AWS credentials chain.
// The report then names the access key that chain found ("aws_access_key_id") and, when the server
// refused the login, "iam_refused": true (the identity lacks rds-db:connect on the user, or the
// instance or the user is not set up for IAM). "target_driver" is the driver that made the physical
// connection behind the wrapper (another driver on the class path may claim jdbc:mysql: URLs).
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Driver;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class CsoDbCheck {
    private static final String[][] REASONS = {
        {"PKIX path", "the truststore does not contain the CA that signed the database's certificate"},
        {"unable to find valid certification path", "the truststore does not contain the CA that signed the database's certificate"},
        {"No name matching", "the database's certificate is not valid for the host name in the URL"},
        {"hostname", "the database's certificate is not valid for the host name in the URL"},
        {"DNS host", "the database's certificate is not valid for the host name in the URL"},
        {"No subject alternative", "the database's certificate is not valid for the host name in the URL"},
        {"Keystore was tampered", "wrong truststore password"},
        {"password was incorrect", "wrong truststore password"},
        {"Failed load keyStore", "the truststore cannot be read (path or password)"},
        {"NoSuchFileException", "the truststore file does not exist on this host"},
        {"FileNotFoundException", "the truststore file does not exist on this host"},
        {"Access denied", "the server refused the credentials (MariaDB also says this to a plaintext client when TLS is required)"},
        {"UnknownHost", "the database host name does not resolve on this host"},
        {"timed out", "the database is not reachable from this host (security group, routing)"},
        {"Connection refused", "nothing listens on the database address and port"},
        {"No suitable driver", "no driver on the class path accepts this URL"},
        {"Unable to load credentials", "no AWS credentials found by the default chain on this host (instance profile, ~/.aws/credentials, environment)"},
    };

    static String json(String value) {
        if (value == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    static String causes(Throwable error) {
        StringBuilder chain = new StringBuilder();
        for (Throwable t = error; t != null; t = t.getCause()) {
            chain.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage()).append(" <- ");
        }
        return chain.toString();
    }

    static String reasonFor(String chain) {
        for (String[] reason : REASONS) {
            if (chain.contains(reason[0])) {
                return reason[1];
            }
        }
        return "see error";
    }

    static String status(Statement statement, String name) throws SQLException {
        try (ResultSet rows = statement.executeQuery("SHOW SESSION STATUS LIKE '" + name + "'")) {
            return rows.next() ? rows.getString(2) : "";
        }
    }

    /** @@server_id and @@global.read_only of the server the session landed on. */
    static String[] identity(Statement statement) throws SQLException {
        try (ResultSet rows = statement.executeQuery("SELECT @@server_id, @@global.read_only")) {
            rows.next();
            return new String[] {rows.getString(1), rows.getString(2)};
        }
    }

    static String redact(String url) {
        return url.replaceAll("(?i)(password=)[^&]*", "$1***");
    }

    // Truststore parameters of both drivers (MariaDB Connector/J 2.x also accepts the MySQL names as aliases)
    static final String[] TRUSTSTORE_PARAMS = {"trustStore", "trustStorePassword", "trustStoreType",
        "trustCertificateKeyStoreUrl", "trustCertificateKeyStorePassword", "trustCertificateKeyStoreType"};
    static final Pattern HOST_PORT = Pattern.compile("^(jdbc:[a-z][a-z:-]*://)([^/:?,\\[\\]]+)(?::(\\d+))?(/.*|\\?.*)?$");
    // What a failed TLS verification looks like in the error chain (handshake, PKIX, host name)
    static final Pattern TLS_FAILURE = Pattern.compile(
        "(?i)(ssl|tls|certificat|pkix|handshake|hostname|host name|identity|subject alternative|No name matching)");

    static String withoutTruststore(String url) {
        String out = url;
        for (String name : TRUSTSTORE_PARAMS) {
            out = out.replaceAll("([?&])" + name + "=[^&]*(&|$)", "$1").replaceAll("[?&]$", "");
        }
        return out;
    }

    static String withParams(String url, String params) {
        return url + (url.contains("?") ? "&" : "?") + params;
    }

    static String untrustedCaUrl(String url, String driverClass, Path store) {
        String base = withoutTruststore(url);
        if (driverClass != null && (driverClass.startsWith("com.mysql") || url.startsWith("jdbc:aws-wrapper:mysql:"))) {
            return withParams(base, "trustCertificateKeyStoreUrl=file:" + store + "&trustCertificateKeyStoreType=JKS"
                + "&trustCertificateKeyStorePassword=changeit");
        }
        return withParams(base, "trustStore=" + store + "&trustStoreType=JKS&trustStorePassword=changeit");
    }

    /** A JKS truststore holding only a CA generated here (never the database's CA). */
    static Path untrustedTruststore(Path dir) throws Exception {
        String keytool = System.getProperty("java.home") + File.separator + "bin" + File.separator + "keytool";
        Path keys = dir.resolve("untrusted-ca-key.jks");
        Path cert = dir.resolve("untrusted-ca.pem");
        Path store = dir.resolve("untrusted-truststore.jks");
        run(keytool, "-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2",
            "-dname", "CN=cso_db preflight untrusted CA", "-ext", "bc:c", "-keystore", keys.toString(),
            "-storepass", "changeit", "-keypass", "changeit", "-storetype", "JKS");
        run(keytool, "-exportcert", "-rfc", "-alias", "ca", "-file", cert.toString(), "-keystore", keys.toString(),
            "-storepass", "changeit", "-storetype", "JKS");
        run(keytool, "-importcert", "-noprompt", "-alias", "untrusted-ca", "-file", cert.toString(),
            "-keystore", store.toString(), "-storepass", "changeit", "-storetype", "JKS");
        return store;
    }

    static void run(String... command) throws Exception {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        process.getOutputStream().close();  // keytool must never wait for an answer on stdin
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (process.waitFor() != 0) {
            throw new IllegalStateException("keytool failed: " + output.trim());
        }
    }

    /** Relays 127.0.0.1:<ephemeral> to host:port, so the driver reaches the server as "localhost". */
    static ServerSocket relay(String host, int port) throws Exception {
        ServerSocket listener = new ServerSocket(0, 8, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(() -> {
            while (!listener.isClosed()) {
                try {
                    Socket client = listener.accept();
                    Socket server = new Socket(host, port);
                    pipe(client, server);
                    pipe(server, client);
                } catch (Exception closed) {
                    return;
                }
            }
        });
        acceptor.setDaemon(true);
        acceptor.start();
        return listener;
    }

    static void pipe(Socket from, Socket to) {
        Thread copier = new Thread(() -> {
            try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                in.transferTo(out);
            } catch (Exception closed) {
                // the other side closed
            } finally {
                try {
                    from.close();
                    to.close();
                } catch (Exception ignored) {
                    // already closed
                }
            }
        });
        copier.setDaemon(true);
        copier.start();
    }

    /** One negative: the connection must fail, and fail in TLS verification. */
    static String negative(String name, String url, Properties properties, String driverClass) {
        String head = json(name) + ": {\"url\": " + json(redact(url));
        try (Connection connection = DriverManager.getConnection(url, properties);
             Statement statement = connection.createStatement()) {
            String cipher = status(statement, "Ssl_cipher");
            return head + ", \"refused\": false, \"cipher\": " + json(cipher) + "}";
        } catch (SQLException error) {
            String chain = causes(error);
            boolean tls = TLS_FAILURE.matcher(chain).find();
            return head + ", \"refused\": true, \"tls_failure\": " + tls + ", \"error\": "
                + json(chain.length() > 400 ? chain.substring(0, 400) : chain) + "}";
        }
    }

    static boolean iamUrl(String url) {
        return url.startsWith("jdbc:aws-wrapper:") && url.matches("(?i).*[?&]wrapperPlugins=[^&]*\\biam\\b.*");
    }

    /** The driver that made the physical connection: behind the AWS wrapper, its current connection's. */
    static String targetDriver(Connection connection) throws SQLException {
        Connection target = connection;
        try {
            target = (Connection) connection.getClass().getMethod("getCurrentConnection").invoke(connection);
        } catch (ReflectiveOperationException notWrapped) {
            // a plain driver's connection
        }
        DatabaseMetaData meta = target.getMetaData();
        return meta.getDriverName() + " " + meta.getDriverVersion();
    }

    /** The access key the AWS SDK's default credentials chain finds (what the iam plugin signs with), or null. */
    static String awsAccessKeyId() {
        try {
            Class<?> chain = Class.forName("software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider");
            Object provider = chain.getMethod("create").invoke(null);
            Object credentials = provider.getClass().getMethod("resolveCredentials").invoke(provider);
            return (String) credentials.getClass().getMethod("accessKeyId").invoke(credentials);
        } catch (ReflectiveOperationException | RuntimeException | LinkageError none) {
            return null;
        }
    }

    public static void main(String[] args) throws Exception {
        boolean negatives = false;
        String expect = null;
        boolean usage = args.length < 2;
        for (int index = 2; index < args.length; index++) {
            if ("--negatives".equals(args[index])) {
                negatives = true;
            } else if ("--expect=primary".equals(args[index]) || "--expect=replica".equals(args[index])) {
                expect = args[index].substring("--expect=".length());
            } else {
                usage = true;
            }
        }
        if (usage) {
            System.err.println("usage: java -cp <driver jar> CsoDbCheck.java <url|-> <user> [--negatives]"
                + " [--expect=primary|replica]  (password: CSO_DB_CHECK_PASSWORD or stdin)");
            System.exit(64);
        }
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String password = System.getenv("CSO_DB_CHECK_PASSWORD");
        if (password == null) {
            password = stdin.readLine();
        }
        String url = args[0];
        if ("-".equals(url)) {
            url = System.getenv("CSO_DB_CHECK_URL");
            if (url == null) {
                url = stdin.readLine();
            }
        }
        Properties properties = new Properties();
        properties.setProperty("user", args[1]);
        properties.setProperty("password", password == null ? "" : password);
        properties.setProperty("connectTimeout", "10000");
        String head = "{\"url\": " + json(redact(url)) + ", \"user\": " + json(args[1]);
        boolean iam = iamUrl(url);
        if (iam) {
            head += ", \"aws_access_key_id\": " + json(awsAccessKeyId());
        }
        String driverClass = null;
        String session;
        String readOnly;
        try {
            Driver driver = DriverManager.getDriver(url);
            driverClass = driver.getClass().getName();
            try (Connection connection = DriverManager.getConnection(url, properties);
                 Statement statement = connection.createStatement()) {
                DatabaseMetaData meta = connection.getMetaData();
                String cipher = status(statement, "Ssl_cipher");
                String version = status(statement, "Ssl_version");
                String[] server = identity(statement);
                readOnly = server[1];
                boolean ok = cipher != null && !cipher.isEmpty();
                session = head + ", \"driver_class\": " + json(driverClass)
                    + ", \"driver\": " + json(meta.getDriverName() + " " + meta.getDriverVersion())
                    + ", \"target_driver\": " + json(targetDriver(connection))
                    + ", \"server\": " + json(meta.getDatabaseProductVersion())
                    + ", \"server_id\": " + server[0] + ", \"read_only\": " + server[1]
                    + ", \"expect\": " + json(expect)
                    + ", \"cipher\": " + json(cipher) + ", \"tls_version\": " + json(version);
                if (!ok) {
                    System.out.println(session + ", \"ok\": false, \"reason\": "
                        + "\"connected WITHOUT TLS: the driver ignored the URL's TLS parameters\"}");
                    System.exit(2);
                }
            }
        } catch (SQLException error) {
            String chain = causes(error);
            System.out.println(head + ", \"driver_class\": " + json(driverClass)
                + (iam ? ", \"iam_refused\": " + chain.contains("Access denied") : "") + ", \"ok\": false, \"error\": "
                + json(chain.length() > 600 ? chain.substring(0, 600) : chain) + ", \"reason\": " + json(reasonFor(chain)) + "}");
            System.exit(3);
            return;
        }
        // The server the URL lands on must be the kind the caller expects (before the negatives: a
        // replica behind the primary's name, or the primary behind the replica's, is refused as such)
        if ("primary".equals(expect) && !"0".equals(readOnly)) {
            System.out.println(session + ", \"ok\": false, \"reason\": \"the server is read-only (read_only=" + readOnly
                + "): writes through this URL would fail; expected the primary (a writable instance)\"}");
            System.exit(6);
        }
        if ("replica".equals(expect) && !"1".equals(readOnly)) {
            System.out.println(session + ", \"ok\": false, \"reason\": \"the server is not a read replica (read_only="
                + readOnly + "): reads through this URL would not be offloaded; expected a read-only replica\"}");
            System.exit(6);
        }
        if (!negatives) {
            System.out.println(session + ", \"ok\": true}");
            System.exit(0);
        }
        // The negatives: a cipher proves encryption; only these prove that CA and host name are verified
        Matcher target = HOST_PORT.matcher(url);
        if (!target.matches()) {
            System.out.println(session + ", \"ok\": false, \"reason\": \"cannot run the wrong-host-name check: "
                + "the URL is not of the form jdbc:<driver>://HOST[:PORT]/...\"}");
            System.exit(5);
        }
        Path dir = Files.createTempDirectory("cso_db-negatives.");
        String untrusted;
        String wrongName;
        try {
            untrusted = negative("untrusted_ca", untrustedCaUrl(url, driverClass, untrustedTruststore(dir)), properties, driverClass);
            try (ServerSocket listener = relay(target.group(2), target.group(3) == null ? 3306 : Integer.parseInt(target.group(3)))) {
                String renamed = target.group(1) + "localhost:" + listener.getLocalPort() + (target.group(4) == null ? "" : target.group(4));
                if (iam) {  // the token stays the real endpoint's: only the certificate's host name can fail
                    renamed = withParams(renamed, "iamHost=" + target.group(2) + "&iamDefaultPort="
                        + (target.group(3) == null ? "3306" : target.group(3)));
                }
                wrongName = negative("wrong_host_name", renamed, properties, driverClass);
            }
        } catch (Exception error) {
            System.out.println(session + ", \"ok\": false, \"reason\": "
                + json("cannot run the negative checks: " + causes(error)) + "}");
            System.exit(5);
            return;
        } finally {
            try (var files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
            }
        }
        String reason = null;
        int code = 0;
        if (untrusted.contains("\"refused\": false")) {
            reason = "verification is not effective: the driver accepted a server certificate from a CA that is not "
                + "in the truststore (a CA this check generated)";
            code = 4;
        } else if (wrongName.contains("\"refused\": false")) {
            reason = "verification is not effective: the driver accepted the server's certificate for a host name it "
                + "does not carry (localhost, relayed to the same server)";
            code = 4;
        } else if (untrusted.contains("\"tls_failure\": false") || wrongName.contains("\"tls_failure\": false")) {
            reason = "a negative check failed for a reason other than TLS verification, so it proves nothing (see negatives)";
            code = 5;
        }
        System.out.println(session + ", \"negatives\": {" + untrusted + ", " + wrongName + "}, \"ok\": " + (code == 0)
            + (reason == null ? "" : ", \"reason\": " + json(reason)) + "}");
        System.exit(code);
    }
}
