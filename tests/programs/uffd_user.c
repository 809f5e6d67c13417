/*
 * uffd_user.c — a program that uses userfaultfd on its own memory, after a scan.
 *
 * Maps 16 pages, touches them, lets arenashim scan (arenashim_collect, with a dead span in
 * quarantine so that the scan runs), then registers the pages with a userfaultfd of its
 * own and prints "register ok" or "register <errno name>".  A mostly-concurrent scan has
 * registered the program's anonymous memory with arenashim's userfaultfd, so the program's
 * registration fails with EBUSY (the documented limit); with scan_mode=stop it succeeds.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

int main(void)
{
    if (!shim_present()) {
        printf("NOSHIM\n");
        return 1;
    }
    size_t len = 16 * 4096;
    char *pages = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED)
        return 2;
    memset(pages, 1, len);
    region_begin();
    char *garbage = malloc(3 << 20); /* a span: quarantined at region end, so the scan runs */
    garbage[0] = 1;
    region_end();
    arenashim_collect();

    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (fd < 0) {
        printf("userfaultfd unavailable (%s)\n", strerror(errno));
        return 0;
    }
    struct uffdio_api api = { .api = UFFD_API };
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        printf("UFFDIO_API failed (%s)\n", strerror(errno));
        return 0;
    }
    struct uffdio_register reg = { .range = { (unsigned long)pages, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) == 0)
        printf("register ok\n");
    else
        printf("register %s\n", errno == EBUSY ? "EBUSY" : strerror(errno));
    return 0;
}
