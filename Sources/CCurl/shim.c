#include "CCurl.h"

CURLcode ccurl_setopt_long(CURL *h, CURLoption opt, long value) { return curl_easy_setopt(h, opt, value); }
CURLcode ccurl_setopt_string(CURL *h, CURLoption opt, const char *value) { return curl_easy_setopt(h, opt, value); }
CURLcode ccurl_setopt_pointer(CURL *h, CURLoption opt, void *value) { return curl_easy_setopt(h, opt, value); }
CURLcode ccurl_setopt_slist(CURL *h, CURLoption opt, struct curl_slist *value) { return curl_easy_setopt(h, opt, value); }
CURLcode ccurl_setopt_write_function(CURL *h, ccurl_write_cb cb) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb); }
CURLcode ccurl_setopt_header_function(CURL *h, ccurl_header_cb cb) { return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb); }
CURLcode ccurl_setopt_sockopt_function(CURL *h, ccurl_sockopt_cb cb) { return curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, cb); }
CURLcode ccurl_getinfo_long(CURL *h, CURLINFO info, long *value) { return curl_easy_getinfo(h, info, value); }
CURLcode ccurl_getinfo_double(CURL *h, CURLINFO info, double *value) { return curl_easy_getinfo(h, info, value); }
unsigned int ccurl_version_num(void) { return curl_version_info(CURLVERSION_NOW)->version_num; }
