# syntax=docker/dockerfile:1
# Build stage: full dependencies, TypeScript compiled to dist/.
# better-sqlite3 is a native addon: the toolchain builds it when no prebuilt binary is reachable.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY bench ./bench
COPY scripts ./scripts
COPY schemas ./schemas
# npm ci runs the install scripts (better-sqlite3) and `prepare` (the TypeScript build).
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

# Runtime stage: production dependencies and compiled code only, non-root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
COPY fixtures/srir ./fixtures/srir
COPY fixtures/ror ./fixtures/ror
RUN mkdir -p /app/data && chown -R node:node /app/data
USER node
EXPOSE 8080 2525
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/passerelle.js"]
CMD ["start"]
