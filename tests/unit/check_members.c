/* tests/unit/check_members.c: being written (issue 5). */
typedef int cairn_placeholder_check_members;
