/* core/server_member.c: being written (issue 5). */
typedef int cairn_placeholder_server_member;
