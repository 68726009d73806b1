import { defineConfig } from "vitest/config";

// The page is served by the gateway at / with its files under /assets/ (hashed names, cached
// as immutable); `npm run dev` proxies the API to a running stack (AIOTS_URL, default :8000).
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    chunkSizeWarningLimit: 5000, // plotly.js-dist-min is ~4.6 MB unminified-equivalent; loaded lazily
  },
  server: {
    proxy: { "/api": process.env.AIOTS_URL ?? "http://127.0.0.1:8000" },
  },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts"],
    testTimeout: 60_000,
  },
});
