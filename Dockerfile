# syntax=docker/dockerfile:1
# One image for both roles ("webhook" and "agent" subcommands). The runtime stage has no
# shell, package manager or compiler: the webhook sits in every pod write's path and the
# agent runs on every node, so what is not in the image cannot be used against them.

# Every stage runs the same Node major, the newest release of it (the tags float), which
# must satisfy package.json engines (>= 20.16.0) and every production dependency's engines:
# test/deps/engines.test.ts checks both against package-lock.json, so npm ci never warns
# EBADENGINE. package.json and the lock are copied before each npm ci, so the lock's
# resolution of package.json overrides (light-my-request 6.6.0: cookie 1, Node >= 18) holds.

# Compile TypeScript with the dev dependencies. Install scripts are skipped: the build
# needs only tsc, and no runtime dependency compiles native code.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, in a stage of their own so dev tools never reach the image.
FROM node:20-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# distroless's Node lives at /nodejs/bin/node and is the image's own entrypoint; it is not
# on PATH, so the entrypoint names it in full. Kubernetes "args" replace CMD only, so a pod
# says "webhook ..." or "agent ..." and keeps the entrypoint.
FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY proto ./proto
COPY examples ./examples
# Numeric, so the kubelet can verify runAsNonRoot (the agent overrides it with uid 0 in
# its DaemonSet, for the CRI socket).
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
CMD ["webhook"]
