/*
 * TCP_NODELAY on every connection the mock cluster accepts.
 *
 * librdkafka 2.0.2's mock cluster does not set it, so its small Produce responses meet Nagle's
 * algorithm on its side and the client's delayed ACK: a producer that waits for its deliveries
 * (as kafka-sink does per batch) stalls ~40 ms whenever several responses are due at once.
 * Real Kafka brokers set TCP_NODELAY on every connection; so does the development Kafka.
 *
 * The mock cluster runs inside librdkafka, out of our reach, so this file interposes accept()
 * and accept4(): an executable's definitions win over libc's for the shared libraries it
 * loads. `--nagle` (sluice_devkafka_nagle = 1) keeps the mock's own behaviour, for comparison.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

int sluice_devkafka_nagle = 0;

/* glibc's own prototypes (with _GNU_SOURCE the address is a transparent union). */
typedef int (*accept_fn)(int, __SOCKADDR_ARG, socklen_t *__restrict);
typedef int (*accept4_fn)(int, __SOCKADDR_ARG, socklen_t *__restrict, int);

static int no_delay(int fd) {
    if (fd >= 0 && !sluice_devkafka_nagle) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int accept(int sockfd, __SOCKADDR_ARG addr, socklen_t *__restrict addrlen) {
    accept_fn real;
    void *sym = dlsym(RTLD_NEXT, "accept");
    memcpy(&real, &sym, sizeof real); /* ISO C has no cast from void * to a function pointer */
    return no_delay(real(sockfd, addr, addrlen));
}

int accept4(int sockfd, __SOCKADDR_ARG addr, socklen_t *__restrict addrlen, int flags) {
    accept4_fn real;
    void *sym = dlsym(RTLD_NEXT, "accept4");
    memcpy(&real, &sym, sizeof real);
    return no_delay(real(sockfd, addr, addrlen, flags));
}
