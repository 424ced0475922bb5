// Copyright: (c) 2026, cso.rds_hardening contributors
// GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Preflight of the cso_db role: prove that a JDBC URL gives an encrypted session whose server
// certificate and host name were verified, with the driver the application uses.
//
//   java -cp <driver jar> CsoDbCheck.java <url|-> <user>
//
// The password is read from the environment variable CSO_DB_CHECK_PASSWORD, or from the first
// line of standard input when that variable is not set; with "-" as URL the URL is read from
// CSO_DB_CHECK_URL or the next line of standard input. Secrets never go on the command line.
// Prints one JSON object (no secrets). Exit codes: 0 verified TLS; 2 connected without TLS;
// 3 could not connect (reason in "reason"); 64 usage.
import java.io.BufferedReader;
import java.io.InputStreamReader;
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

    static String redact(String url) {
        return url.replaceAll("(?i)(password=)[^&]*", "$1***");
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: java -cp <driver jar> CsoDbCheck.java <url|-> <user>  (password: CSO_DB_CHECK_PASSWORD or stdin)");
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
        String driverClass = null;
        try {
            Driver driver = DriverManager.getDriver(url);
            driverClass = driver.getClass().getName();
            try (Connection connection = DriverManager.getConnection(url, properties);
                 Statement statement = connection.createStatement()) {
                DatabaseMetaData meta = connection.getMetaData();
                String cipher = status(statement, "Ssl_cipher");
                String version = status(statement, "Ssl_version");
                boolean ok = cipher != null && !cipher.isEmpty();
                System.out.println(head + ", \"driver_class\": " + json(driverClass)
                    + ", \"driver\": " + json(meta.getDriverName() + " " + meta.getDriverVersion())
                    + ", \"server\": " + json(meta.getDatabaseProductVersion())
                    + ", \"cipher\": " + json(cipher) + ", \"tls_version\": " + json(version)
                    + ", \"ok\": " + ok + (ok ? "" : ", \"reason\": \"connected WITHOUT TLS: the driver ignored the URL's TLS parameters\"") + "}");
                System.exit(ok ? 0 : 2);
            }
        } catch (SQLException error) {
            String chain = causes(error);
            System.out.println(head + ", \"driver_class\": " + json(driverClass) + ", \"ok\": false, \"error\": "
                + json(chain.length() > 600 ? chain.substring(0, 600) : chain) + ", \"reason\": " + json(reasonFor(chain)) + "}");
            System.exit(3);
        }
    }
}
