/*
 * AWSAuthenticationPlugin for the lab's MariaDB servers (test infrastructure, csolab).
 *
 * RDS for MySQL lets an account log in with an IAM authentication token:
 *   CREATE USER 'u' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';
 * (AWS: RDS User Guide, "Creating a database account using IAM authentication").
 * The client sends the token as a cleartext password (client plugin mysql_clear_password) and
 * only over TLS (AWS: RDS User Guide, "Connecting to your DB instance using IAM authentication
 * from the command line: AWS CLI and mysql client": --enable-cleartext-plugin, --ssl-ca;
 * "IAM database authentication": "requires SSL").
 *
 * This plugin only collects what the server knows and asks the lab's verifier
 * (csolab.dataplane.iam_verifier, one per lab, a Unix socket) whether to let the login in:
 *   request  "v1\n<instance uid>\n<user>\n<tls 0|1>\n<client address>\n<auth string>\n<token>"
 *   answer   "ALLOW ..." or "DENY <reason>"
 * Anything else (verifier down, timeout) is a refusal.
 *
 * TLS: the 10.11 plugin API tells no plugin whether the connection is TLS. The plugin asks
 * for the token itself (the auth-switch request is flushed to the client before the answer can
 * come), then peeks at the raw bytes of the client's answer on the socket before the server
 * reads them: a TLS application-data record header (0x17 0x03 0x0[1-4]) means TLS; a MySQL
 * packet header whose length is the length of the packet the server then hands over means
 * plaintext.
 */
#include <mysql/plugin_auth.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000

static char *verifier_socket;
static char *instance_uid;

static MYSQL_SYSVAR_STR(verifier_socket, verifier_socket, PLUGIN_VAR_READONLY | PLUGIN_VAR_RQCMDARG,
                        "Unix socket of the lab's IAM token verifier", NULL, NULL, "");
static MYSQL_SYSVAR_STR(instance, instance_uid, PLUGIN_VAR_READONLY | PLUGIN_VAR_RQCMDARG,
                        "uid of the emulated RDS instance this server serves", NULL, NULL, "");

static struct st_mysql_sys_var *system_variables[] = {
  MYSQL_SYSVAR(verifier_socket), MYSQL_SYSVAR(instance), NULL
};

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first 5 bytes the client sent that the server has not read yet; 0 if they came. */
static int peek_header(int fd, unsigned char *header)
{
  long long deadline = now_ms() + WAIT_MS;
  for (;;)
  {
    struct pollfd p = { fd, POLLIN, 0 };
    long long left = deadline - now_ms();
    ssize_t n;
    if (left <= 0 || poll(&p, 1, (int) left) <= 0)
      return 1;
    n = recv(fd, header, 5, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 5)
      return 0;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return 1;
    usleep(1000); /* a partial header: the rest is on its way */
  }
}

static int send_all(int fd, const char *data, size_t length)
{
  while (length)
  {
    ssize_t n = send(fd, data, length, MSG_NOSIGNAL);
    if (n <= 0)
      return 1;
    data += n;
    length -= (size_t) n;
  }
  return 0;
}

/* Ask the verifier; 1 when it answers ALLOW. */
static int verify(const char *user, unsigned int user_length, int tls, const char *host, unsigned int host_length,
                  const char *auth_string, unsigned long auth_length, const char *token, size_t token_length)
{
  struct sockaddr_un address;
  struct timeval timeout = { WAIT_MS / 1000, 0 };
  char head[1024], answer[256];
  size_t got = 0;
  int fd, allowed = 0, length;

  if (!verifier_socket || !*verifier_socket || strlen(verifier_socket) >= sizeof(address.sun_path))
    return 0;
  length = snprintf(head, sizeof(head), "v1\n%s\n%.*s\n%d\n%.*s\n%.*s\n", instance_uid ? instance_uid : "",
                    (int) user_length, user, tls, (int) host_length, host ? host : "", (int) auth_length,
                    auth_string ? auth_string : "");
  if (length <= 0 || length >= (int) sizeof(head))
    return 0;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  strcpy(address.sun_path, verifier_socket);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, (struct sockaddr *) &address, sizeof(address)) == 0 &&
      !send_all(fd, head, (size_t) length) && !send_all(fd, token, token_length) && shutdown(fd, SHUT_WR) == 0)
  {
    for (;;)
    {
      ssize_t n = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);
      if (n <= 0)
        break;
      got += (size_t) n;
      if (got == sizeof(answer) - 1)
        break;
    }
    answer[got] = 0;
    allowed = strncmp(answer, "ALLOW", 5) == 0;
  }
  close(fd);
  return allowed;
}

static int authenticate(MYSQL_PLUGIN_VIO *vio, MYSQL_SERVER_AUTH_INFO *info)
{
  MYSQL_PLUGIN_VIO_INFO connection;
  unsigned char header[5], *packet;
  int packet_length, peeked, tls;
  size_t token_length;

  info->password_used = PASSWORD_USED_YES;
  vio->info(vio, &connection);

  /* ask for the token: the server sends the switch to mysql_clear_password now */
  if (vio->write_packet(vio, (const unsigned char *) "", 0))
    return CR_ERROR;
  peeked = connection.protocol == MYSQL_VIO_TCP && !peek_header(connection.socket, header);
  packet_length = vio->read_packet(vio, &packet);
  if (packet_length < 0)
    return CR_ERROR;
  tls = peeked && header[0] == 0x17 && header[1] == 0x03 && header[2] >= 0x01 && header[2] <= 0x04 &&
        (unsigned int) (header[0] | header[1] << 8 | header[2] << 16) != (unsigned int) packet_length;

  token_length = (size_t) packet_length;
  while (token_length && packet[token_length - 1] == 0)
    token_length--; /* mysql_clear_password sends the password NUL-terminated */
  if (!token_length || memchr(packet, 0, token_length))
    return CR_ERROR;
  return verify(info->user_name, info->user_name_length, tls, info->host_or_ip, info->host_or_ip_length,
                info->auth_string, info->auth_string_length, (const char *) packet, token_length)
             ? CR_OK : CR_ERROR;
}

static struct st_mysql_auth aws_auth_handler = {
  MYSQL_AUTHENTICATION_INTERFACE_VERSION,
  "mysql_clear_password",
  authenticate,
  NULL,
  NULL
};

maria_declare_plugin(aws_authentication)
{
  MYSQL_AUTHENTICATION_PLUGIN,
  &aws_auth_handler,
  "AWSAuthenticationPlugin",
  "csolab (test infrastructure)",
  "RDS IAM database authentication, emulated: tokens checked by the lab's verifier",
  PLUGIN_LICENSE_GPL,
  NULL,
  NULL,
  0x0100,
  NULL,
  system_variables,
  "1.0",
  MariaDB_PLUGIN_MATURITY_STABLE
}
maria_declare_plugin_end;
