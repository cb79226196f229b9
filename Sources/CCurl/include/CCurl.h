// Shims for libcurl: curl_easy_setopt/getinfo are variadic, which Swift cannot call,
// so each argument type gets a fixed-signature wrapper.
#pragma once
#include <curl/curl.h>

CURLcode ccurl_setopt_long(CURL *h, CURLoption opt, long value);
CURLcode ccurl_setopt_string(CURL *h, CURLoption opt, const char *value);
CURLcode ccurl_setopt_pointer(CURL *h, CURLoption opt, void *value);
CURLcode ccurl_setopt_slist(CURL *h, CURLoption opt, struct curl_slist *value);
typedef size_t (*ccurl_write_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
CURLcode ccurl_setopt_write_function(CURL *h, ccurl_write_cb cb);
// Header lines, and for HTTP/2 also the trailers (where gRPC puts grpc-status), arrive here.
typedef size_t (*ccurl_header_cb)(char *buffer, size_t size, size_t nitems, void *userdata);
CURLcode ccurl_setopt_header_function(CURL *h, ccurl_header_cb cb);
typedef int (*ccurl_sockopt_cb)(void *clientp, curl_socket_t fd, curlsocktype purpose);
CURLcode ccurl_setopt_sockopt_function(CURL *h, ccurl_sockopt_cb cb);
CURLcode ccurl_getinfo_long(CURL *h, CURLINFO info, long *value);
CURLcode ccurl_getinfo_double(CURL *h, CURLINFO info, double *value);
// libcurl's version as 0xXXYYZZ (curl_version_info's version_num; CURLVERSION_NOW is a macro).
unsigned int ccurl_version_num(void);
