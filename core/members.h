/* core/members.h: being written (issue 5). */
#ifndef CAIRN_CORE_MEMBERS_H
#define CAIRN_CORE_MEMBERS_H
#endif
