/*
 * transport-file.c - file:PATH: save a migration stream to a regular file and
 * restore it.  The opened fd becomes a "file" fd transport (transport-fd.c):
 * blocking, never -EAGAIN, always ready.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

MigTransport *mig_transport_file_open(MigLoop *loop, const char *path, bool for_write,
                                      MigErr **errp)
{
    int flags = for_write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
    struct stat st;
    MigTransport *t;
    int fd;

    if (!path || !*path) {
        mig_err_set(errp, -EINVAL, "file path is empty");
        return NULL;
    }
    do {
        fd = open(path, flags | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        mig_err_set(errp, -errno, "cannot open file:%s for %s: %s", path,
                    for_write ? "writing" : "reading", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        mig_err_set(errp, -EISDIR, "file:%s is a directory", path);
        return NULL;
    }
    t = mig_transport_fd_new(loop, fd, "file");
    if (!t) {
        close(fd);
        mig_err_set(errp, -EBADF, "cannot wrap file:%s", path);
    }
    return t;
}
