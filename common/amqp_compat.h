/* amqp_compat.h: includes rabbitmq-c whether it installs <amqp.h> (0.11, Debian 12) or <rabbitmq-c/amqp.h> (0.12+). */
#ifndef DS_COMMON_AMQP_COMPAT_H
#define DS_COMMON_AMQP_COMPAT_H

#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#define DS_RABBITMQ_C_NEW_HEADERS 1
#endif
#endif

#ifdef DS_RABBITMQ_C_NEW_HEADERS
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#endif

#endif
