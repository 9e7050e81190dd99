# Dockerfile: the datasync image (datasync-consumer, datasync, libdatasync) on Debian bookworm, run as an unprivileged user.
#
#   docker build -t datasync:local .
#   docker run --rm -v $PWD/node-a.conf:/etc/datasync/datasync.conf:ro \
#     -v datasync-a:/var/lib/datasync datasync:local
#
# compose.yaml builds it for its consumers and its setup job. The default
# command is the consumer, reading /etc/datasync/datasync.conf (mount your
# configuration there); `datasync ...` runs the command line tool instead.
#
# The user datasync has the fixed UID and GID 990 (DATASYNC_UID/DATASYNC_GID
# to change at build time), so a volume's files keep the same owner across
# images, and an application container of the same server can share
# /var/lib/datasync (the spool and the clock file) by running with group 990.

# ---- build: the same Debian packages and Makefile as a developer's machine
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      librabbitmq-dev libjson-c-dev zlib1g-dev libmariadb-dev \
      libmicrohttpd-dev libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# install-runtime: the programs, libdatasync.so and the example configuration
# only; no header, static library, .pc file or man page reaches the image.
RUN make -j"$(nproc)" BUILD=/build all \
 && make BUILD=/build PREFIX=/usr/local DESTDIR=/runtime install-runtime

# ---- run: the shared libraries only, no compiler
FROM debian:bookworm-slim
ARG DATASYNC_UID=990
ARG DATASYNC_GID=990
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librabbitmq4 libjson-c5 zlib1g libmariadb3 libmicrohttpd12 libsystemd0 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /runtime/ /
# The daemon needs no privilege: a system user with no shell. The state
# directory is laid out as packaging/tmpfiles.d/datasync.conf lays it out on
# a server: 0755 for the clock file, the spool writable by group datasync; a
# fresh named volume mounted there starts as a copy of it.
RUN ldconfig \
 && groupadd --system --gid "$DATASYNC_GID" datasync \
 && useradd --system --uid "$DATASYNC_UID" --gid datasync --home-dir /var/lib/datasync \
      --no-create-home --shell /usr/sbin/nologin datasync \
 && install -d -o datasync -g datasync -m 0755 /var/lib/datasync \
 && install -d -o datasync -g datasync -m 2770 /var/lib/datasync/spool \
 && install -d -m 0755 /etc/datasync
USER datasync:datasync
WORKDIR /var/lib/datasync
ENV DATASYNC_CONFIG=/etc/datasync/datasync.conf
# With [metrics] listen = :9464 the consumer answers GET /metrics and GET
# /health there; compose.yaml's health check asks /health with bash alone
# (/dev/tcp), so the image needs no curl. sd_notify stays silent here: no
# NOTIFY_SOCKET in a container.
EXPOSE 9464
# SIGTERM (docker stop): the consumer finishes its batch, acks and exits 0.
STOPSIGNAL SIGTERM
CMD ["datasync-consumer", "-c", "/etc/datasync/datasync.conf"]
