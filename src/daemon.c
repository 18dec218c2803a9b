/* daemon.c: going to the background with the mount's verdict (see
 * daemon.h).
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* The child's end of the pipe to the waiting parent; -1 in the
 * foreground and once the verdict is sent. */
static int report_fd = -1;

/* The parent of daemon_fork(): wait for the verdict on @fd, the read end
 * of the pipe, or for child @pid to end, and exit accordingly. */
_Noreturn static void parent_wait(int fd, pid_t pid)
{
	char status = 1;
	ssize_t n;
	int ws;

	while ((n = read(fd, &status, 1)) < 0 && errno == EINTR)
		;
	if (n == 1 && status == 0)
		_exit(0);
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	_exit(WIFEXITED(ws) && WEXITSTATUS(ws) ? WEXITSTATUS(ws) : 1);
}

int daemon_fork(void)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		err_set(errno, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		err_set(errno, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(fds[1]);
		parent_wait(fds[0], pid);
	}
	close(fds[0]);
	report_fd = fds[1];
	/* (a background start on a terminal with tostop: the one line of a
	 * failure must be written, not stop the child while the parent
	 * waits for ever) */
	signal(SIGTTOU, SIG_IGN);
	/* (still in the parent's process group: a Ctrl-C, or the SIGTERM of
	 * timeout(1) to its group, during the login reaches it too, and
	 * nothing is mounted later; its own session comes with the mount) */
	return 0;
}

void daemon_detach(void)
{
	int fd = open("/dev/null", O_RDWR);
	char up = 0;

	if (chdir("/") < 0) {
		/* "/" always exists */
	}
	log_to_syslog("iscsifs");
	setsid();               /* (not a group leader: a forked child) */
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (report_fd < 0)
		return;
	if (write(report_fd, &up, 1) < 0) {
		/* the parent is gone; nothing to tell */
	}
	close(report_fd);
	report_fd = -1;
}
