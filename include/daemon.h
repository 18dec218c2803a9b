/* daemon.h: going to the background with the mount's verdict.
 *
 * Start-up is synchronous (DESIGN section 1): the command returns only
 * once the mount is up, or has failed and left nothing behind.  Threads
 * do not survive a fork, so the process forks before it starts any
 * (daemon_fork()); the parent then waits on a pipe.  The child mounts and
 * either says the mount is up (daemon_detach(), after which it logs to
 * syslog) and the parent exits 0, or fails, tears everything down and
 * exits (the pipe closes with it), and the parent exits with the child's
 * status once it has ended.  A failure is printed by the child on the
 * terminal it still shares.
 *
 * Thread model: main() only; daemon_fork() before any thread exists.
 */
#ifndef ISCSIFS_DAEMON_H
#define ISCSIFS_DAEMON_H

/* Fork.  In the parent it does not return: it exits 0 once the child has
 * called daemon_detach(), else with the child's exit status (1 when that
 * is 0 or unknown) once the child has ended.  In the child it returns 0,
 * the process still in the parent's process group and session, so that
 * a signal to the group during the start (Ctrl-C) ends both; -1 with
 * err_set() when the pipe or the fork failed (no child then). */
int daemon_fork(void);

/* In the child of daemon_fork(), once the mount is up: leave the
 * terminal (a session of its own, stdin, stdout and stderr to /dev/null,
 * log to syslog, cwd /) and tell the waiting parent, which exits 0. */
void daemon_detach(void);

#endif /* ISCSIFS_DAEMON_H */
