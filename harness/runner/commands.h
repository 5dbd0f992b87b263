/*
 * commands.h - the subcommands of the `migcert` CLI, one file each
 * (harness/runner/cmd-<name>.c), dispatched by main.c.
 * Each returns the process exit status: 0 success, 1 the check failed
 * (incompatibility, failed case), 2 usage or input error.
 */
#ifndef MIGCERT_RUNNER_COMMANDS_H
#define MIGCERT_RUNNER_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_vm(int argc, char **argv);
int cmd_client(int argc, char **argv);
int cmd_certify(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_dump_vmstate(int argc, char **argv);
int cmd_check_compat(int argc, char **argv);
int cmd_list_faults(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
