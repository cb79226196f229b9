#pragma once
#include <systemd/sd-daemon.h>
// sd_notify is not variadic; sd_notifyf is, so Swift formats the string itself.
#define CSYSTEMD_LISTEN_FDS_START SD_LISTEN_FDS_START
static inline int csystemd_listen_fds_start(void) { return SD_LISTEN_FDS_START; }
