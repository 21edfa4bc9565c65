/* cli.h — the memledger commands, one file each (cmd_*.c). Each takes its
 * own argv (argv[0] is the command name) and returns the exit status. */
#ifndef ML_CLI_H
#define ML_CLI_H

int cmd_run(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_why(int argc, char **argv);

#endif
