# syntax=docker/dockerfile:1
#
# Trainyard's one image: docker-compose.yml runs `web`, `worker` and `migrate`
# from it, and `docker run <image> npm run trainyard -- <command>` runs any
# other CLI command. There is no build step (tsx, a runtime dependency, runs
# the TypeScript sources directly), so a single stage with the sources and
# the production node_modules is all it takes.

# Node 20 as package.json's engines asks; Debian (glibc) rather than Alpine
# because Temporal's native core-bridge and SWC ship prebuilt glibc binaries.
FROM node:20.19.5-bookworm-slim

# Trainers on the `local` machine are launched detached under `setsid` (from
# util-linux) by `sh`. Both belong to Debian's essential set and so are in
# the slim image; install util-linux should that ever change, and fail the
# build if either is still missing.
RUN if ! command -v setsid > /dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends util-linux \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && command -v setsid \
    && command -v sh

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false \
    PORT=3000 \
    TRAINYARD_DATA_DIR=/data

WORKDIR /app

# Dependencies before sources, so editing code does not re-run npm ci.
# --omit=dev: tsx is a runtime dependency; vitest, typescript, drizzle-kit and
# friends stay out. Optional native add-ons that need a compiler (ssh2's
# crypto binding, cpu-features) fall back to their pure-JS paths.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev \
    && npm cache clean --force

# Sources stay owned by root: the app user can read them, not change them.
COPY . .

# The data directory belongs to the app user. A named volume mounted here
# starts as a copy of this directory, ownership included.
RUN mkdir -p /data \
    && chown node:node /data

# The node image's unprivileged user (uid 1000).
USER node

EXPOSE 3000

# No HEALTHCHECK here: worker and migrate run from this image too and have no
# HTTP port. docker-compose.yml gives `web` its /healthz check.
CMD ["npm", "run", "trainyard", "--", "web"]
