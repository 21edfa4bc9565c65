/* diff_processes.h — `memledger diff --by-process`: snapshots of several
 * processes at once (what `memledger snapshot --tree` leaves of a pre-fork
 * server: a master and its workers, each snapshotted two or more times),
 * told apart by their headers and compared each with itself; then the
 * workers of one parent (the same command line but for numbers) taken
 * together, with how much of each row each worker grew.
 * Owns: grouping snapshot files into processes (pid and start time),
 * directories as sets of snapshots, and the merged sums. The growth, the
 * rows and the formats are the usual ones (growth.c, diff_report.c,
 * report_*.c). Never decides what one report shows. */
#ifndef ML_DIFF_PROCESSES_H
#define ML_DIFF_PROCESSES_H

#include "cli/diff_report.h"

enum ml_diff_format { ML_FMT_TEXT, ML_FMT_JSON, ML_FMT_MARKDOWN };

/* `args`: snapshot files and directories (each directory: every
 * memledger.PID.SEQ.snap in it). `proto` holds the selection and the
 * thresholds every report uses; `limit` rows are shown (0: all).
 * Returns the exit status: 0; 1 a threshold was crossed in any report;
 * 2 no process had two snapshots, or a file could not be read. */
int ml_diff_processes(char *const *args, size_t nargs, const ml_diff_report_t *proto, enum ml_diff_format format,
                      uint64_t limit);

#endif
