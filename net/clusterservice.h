/* net/clusterservice.h: being written (issue 5). */
#ifndef CAIRN_NET_CLUSTERSERVICE_H
#define CAIRN_NET_CLUSTERSERVICE_H
#endif
