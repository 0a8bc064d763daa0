/* net/testfault.h: being written (issue 5). */
#ifndef CAIRN_NET_TESTFAULT_H
#define CAIRN_NET_TESTFAULT_H
#endif
