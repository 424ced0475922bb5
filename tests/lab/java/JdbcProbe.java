// Lab probe for the pinned JDBC drivers: one connection through DriverManager with the URL on
// standard input (first line) and the user as the only argument; AWS credentials come from the
// environment (the SDK's default chain). Prints one JSON line: the driver class that took the URL,
// the driver behind it (DatabaseMetaData), CURRENT_USER(), the session's TLS cipher; or the error
// chain. Exit 0 connected, 3 refused.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class JdbcProbe {
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

    static String scalar(Statement statement, String query) throws SQLException {
        try (ResultSet rows = statement.executeQuery(query)) {
            return rows.next() ? rows.getString(rows.getMetaData().getColumnCount()) : null;
        }
    }

    /** The driver that made the physical connection: behind the AWS wrapper, its current connection's. */
    static String targetDriver(Connection connection) throws SQLException {
        Connection target = connection;
        try {
            target = (Connection) connection.getClass().getMethod("getCurrentConnection").invoke(connection);
        } catch (ReflectiveOperationException notWrapped) {
            // a plain driver's connection
        }
        return target.getMetaData().getDriverName() + " " + target.getMetaData().getDriverVersion();
    }

    public static void main(String[] args) throws Exception {
        String url = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        Properties properties = new Properties();
        properties.setProperty("user", args[0]);
        properties.setProperty("connectTimeout", "10000");
        String driverClass = DriverManager.getDriver(url).getClass().getName();
        try (Connection connection = DriverManager.getConnection(url, properties);
             Statement statement = connection.createStatement()) {
            System.out.println("{\"connected\": true, \"driver_class\": " + json(driverClass)
                + ", \"current_user\": " + json(scalar(statement, "SELECT CURRENT_USER()"))
                + ", \"cipher\": " + json(scalar(statement, "SHOW SESSION STATUS LIKE 'Ssl_cipher'"))
                + ", \"target_driver\": " + json(targetDriver(connection)) + "}");
        } catch (SQLException error) {
            StringBuilder chain = new StringBuilder();
            for (Throwable cause = error; cause != null; cause = cause.getCause()) {
                chain.append(cause.getClass().getName()).append(": ").append(cause.getMessage()).append(" <- ");
            }
            System.out.println("{\"connected\": false, \"driver_class\": " + json(driverClass)
                + ", \"error_code\": " + error.getErrorCode() + ", \"error\": " + json(chain.toString()) + "}");
            System.exit(3);
        }
    }
}
