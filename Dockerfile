# Dockerfile: the datasync image (datasync-consumer, datasync, libdatasync) on Debian bookworm, run as an unprivileged user.
#
#   docker build -t datasync:local .
#   docker run --rm -v $PWD/node-a.conf:/etc/datasync/datasync.conf:ro datasync:local
#
# compose.yaml builds it for its consumers and its setup job. The default
# command is the consumer, reading /etc/datasync/datasync.conf (mount your
# configuration there); `datasync ...` runs the command line tool instead.

# ---- build: the same Debian packages and Makefile as a developer's machine
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      librabbitmq-dev libjson-c-dev libinih-dev zlib1g-dev libmariadb-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" BUILD=/build all \
 && make BUILD=/build PREFIX=/usr/local DESTDIR=/stage install

# ---- run: the shared libraries only, no compiler
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librabbitmq4 libjson-c5 libinih1 zlib1g libmariadb3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /stage/usr/local/ /usr/local/
# The daemon needs no privilege: a system user with no shell, owning only the
# spool directory (producer.spool_dir's default).
RUN ldconfig \
 && groupadd --system datasync \
 && useradd --system --gid datasync --home-dir /var/lib/datasync --no-create-home \
      --shell /usr/sbin/nologin datasync \
 && install -d -o datasync -g datasync -m 0750 /var/lib/datasync /var/lib/datasync/spool \
 && install -d -m 0755 /etc/datasync
USER datasync:datasync
WORKDIR /var/lib/datasync
ENV DATASYNC_CONFIG=/etc/datasync/datasync.conf
# SIGTERM (docker stop): the consumer finishes its batch, acks and exits 0.
STOPSIGNAL SIGTERM
CMD ["datasync-consumer", "-c", "/etc/datasync/datasync.conf"]
