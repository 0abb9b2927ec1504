# syntax=docker/dockerfile:1
# The workers' image: Node.js 20 with this repository's packages installed from its lockfile and
# built, run as the unprivileged user `node`; its entry point is `thor-ts-worker <config.json>`
# (`thor-ts`, `thor-ts-launch` and `thor-ts-data` are on the PATH too). From the repository root:
#   docker build -t <registry>/thor-ts:<tag> . && docker push <registry>/thor-ts:<tag>
# examples/kubernetes and examples/slurm run it.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY . .
RUN npm ci \
 && npx turbo run build --filter='@thor-ts/*' \
 && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PATH=/opt/thor-ts/node_modules/.bin:$PATH
WORKDIR /opt/thor-ts
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
USER node
ENTRYPOINT ["thor-ts-worker"]
