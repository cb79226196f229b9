#include "CMicroHTTPD.h"
#include <stdarg.h>
#include <stdio.h>

// MHD hands the logger the daemon's `cls` (the Swift object) and a va_list; the Swift function that receives
// the formatted line is the same for every daemon, so one static pointer holds it.
static cmhd_log_cb log_function;

static void cmhd_log_trampoline(void *cls, const char *format, va_list ap) {
  char line[512];
  vsnprintf(line, sizeof line, format, ap);
  if (log_function) log_function(cls, line);
}

struct MHD_Daemon *cmhd_start(int listen_fd, size_t memory_limit, unsigned int connection_limit,
                              unsigned int timeout_seconds, MHD_AccessHandlerCallback handler,
                              MHD_RequestCompletedCallback completed, MHD_NotifyConnectionCallback notify,
                              void *cls, cmhd_log_cb log) {
  log_function = log;
  return MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, cls,
                          MHD_OPTION_EXTERNAL_LOGGER, cmhd_log_trampoline, cls,  // first, or MHD warns
                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory_limit,
                          MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                          MHD_OPTION_CONNECTION_TIMEOUT, timeout_seconds,
                          MHD_OPTION_NOTIFY_COMPLETED, completed, cls,
                          MHD_OPTION_NOTIFY_CONNECTION, notify, cls,
                          MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
                          MHD_OPTION_END);
}

int cmhd_epoll_fd(struct MHD_Daemon *daemon) {
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
  return info ? info->epoll_fd : -1;
}

int cmhd_connection_fd(struct MHD_Connection *connection) {
  const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  return info ? info->connect_fd : -1;
}
