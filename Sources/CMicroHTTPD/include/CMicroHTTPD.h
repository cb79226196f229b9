// Shims for libmicrohttpd: only what Swift cannot call directly. MHD_start_daemon, MHD_get_daemon_info and
// MHD_get_connection_info are variadic, so each use gets a fixed signature here; MHD's external logger takes a
// va_list, so it is formatted here and handed to Swift as one string.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

// A log line from libmicrohttpd, already formatted.
typedef void (*cmhd_log_cb)(void *cls, const char *message);

// Starts a daemon driven by the caller's event loop: epoll inside MHD, no thread of its own (the caller watches
// the epoll fd, cmhd_epoll_fd, and calls MHD_run when it is readable and when MHD_get_timeout says so).
// `listen_fd` is a listening socket the caller made (TCP or Unix); MHD closes it when stopped.
// Returns NULL on failure (the reason goes to `log`).
struct MHD_Daemon *cmhd_start(int listen_fd, size_t memory_limit, unsigned int connection_limit,
                              unsigned int timeout_seconds, MHD_AccessHandlerCallback handler,
                              MHD_RequestCompletedCallback completed, MHD_NotifyConnectionCallback notify,
                              void *cls, cmhd_log_cb log);

// The daemon's epoll descriptor (MHD_DAEMON_INFO_EPOLL_FD), or -1.
int cmhd_epoll_fd(struct MHD_Daemon *daemon);

// A connection's socket (MHD_CONNECTION_INFO_CONNECTION_FD), or -1.
int cmhd_connection_fd(struct MHD_Connection *connection);
