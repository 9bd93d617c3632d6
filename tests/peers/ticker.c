/* A child for exec: using C stdio (compiled by the tests with cc): prints `tick I T` N times,
 * INTERVAL milliseconds apart, T the time of day when printed, never flushing; then `got LINE`
 * for each line of standard input and `bye` at its end. On a pipe stdio holds the output until
 * exit (4 KiB at a time); on a terminal, a line at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ticker N INTERVAL_MS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    long ms = atol(argv[2]);
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    for (int i = 0; i < n; i++) {
        if (i)
            nanosleep(&pause, NULL);
        struct timeval tv;
        gettimeofday(&tv, NULL);
        printf("tick %d %ld.%06ld\n", i, (long)tv.tv_sec, (long)tv.tv_usec);
    }
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        printf("got %s\n", line);
    }
    printf("bye\n");
    return 0;
}
