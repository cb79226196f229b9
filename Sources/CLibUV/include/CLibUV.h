// Shims for libuv: only what Swift cannot import or call directly.
#pragma once
#include <uv.h>
#include <sys/socket.h>
#include <sys/un.h>

// uv_handle_t casts are implicit in C but not in Swift; these keep the casts in one place.
static inline uv_handle_t *cuv_handle(void *h) { return (uv_handle_t *)h; }
static inline uv_stream_t *cuv_stream(void *h) { return (uv_stream_t *)h; }

// SO_PEERCRED via getsockopt: struct ucred needs _GNU_SOURCE, which Swift's Glibc module does not set.
static inline int cuv_peer_cred(int fd, int *pid, unsigned *uid, unsigned *gid) {
  struct { int pid; unsigned uid; unsigned gid; } cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
  *pid = cred.pid; *uid = cred.uid; *gid = cred.gid;
  return 0;
}

// SO_PEERGROUPS (Linux 4.13+): the peer's supplementary groups as they were at connect(). Older libc
// headers may lack the constant. Returns how many were stored, or -1 (ERANGE when more than `max`).
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
static inline int cuv_peer_groups(int fd, unsigned *groups, int max) {
  socklen_t len = (socklen_t)(max * sizeof(unsigned));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) return -1;
  return (int)(len / sizeof(unsigned));
}

#include <sys/prctl.h>
// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not set; prctl names the caller.
static inline void cuv_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
