# syntax=docker/dockerfile:1
# Build stage: full dependencies, TypeScript compiled to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY bench ./bench
COPY scripts ./scripts
COPY schemas ./schemas
RUN npm run build && npm prune --omit=dev

# Runtime stage: production dependencies and compiled code only, non-root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
RUN mkdir -p /app/data && chown -R node:node /app/data
USER node
EXPOSE 8080 2525
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/passerelle.js"]
CMD ["start"]
