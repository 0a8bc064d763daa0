/* tests/unit/check_raftsim.c: being written (issue 5). */
typedef int cairn_placeholder_check_raftsim;
