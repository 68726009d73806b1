// Plotly charts (plotly.js-dist-min, loaded on first use so the first paint stays small).
import type { Data, Layout } from "plotly.js-dist-min";

type PlotlyModule = typeof import("plotly.js-dist-min");
/** A memoised module import; a failed import (a dropped connection) is forgotten so the next call retries. */
export function onceRetrying<T>(importer: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    pending ??= importer().catch((err: unknown) => {
      pending = null;
      throw err;
    });
    return pending;
  };
}

const load = onceRetrying(() =>
  import("plotly.js-dist-min").then((m) => ((m as unknown as { default?: PlotlyModule }).default ?? m) as PlotlyModule),
);

const BASE: Partial<Layout> = {
  margin: { l: 50, r: 12, t: 36, b: 40 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { family: "system-ui, sans-serif", size: 12, color: "#d7dde8" },
  legend: { orientation: "h", y: -0.2 },
  xaxis: { gridcolor: "#2a3140", zerolinecolor: "#3a4356" },
  yaxis: { gridcolor: "#2a3140", zerolinecolor: "#3a4356" },
  autosize: true,
};

export async function plot(el: HTMLElement, data: Data[], layout: Partial<Layout>): Promise<void> {
  const P = await load();
  const merged: Partial<Layout> = {
    ...BASE,
    ...layout,
    xaxis: { ...BASE.xaxis, ...layout.xaxis },
    yaxis: { ...BASE.yaxis, ...layout.yaxis },
  };
  await P.react(el, data, merged, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] });
}

export interface CalibrationBin {
  predicted: number;
  realised: number;
  count: number;
}

/** Reliability diagram: realised hit rate against predicted probability; the diagonal is perfect. */
export function calibrationChart(el: HTMLElement, bins: CalibrationBin[], title: string): Promise<void> {
  return plot(
    el,
    [
      { x: [0, 1], y: [0, 1], mode: "lines", name: "perfect", line: { dash: "dot", color: "#667" } },
      {
        x: bins.map((b) => b.predicted),
        y: bins.map((b) => b.realised),
        text: bins.map((b) => `${b.count} signals`),
        mode: "lines+markers",
        name: "realised",
        marker: { size: bins.map((b) => 6 + Math.min(14, Math.sqrt(b.count))) },
      },
    ],
    {
      title: { text: title },
      xaxis: { title: { text: "predicted" }, range: [0, 1] },
      yaxis: { title: { text: "realised" }, range: [0, 1] },
      legend: { x: 0.02, y: 0.98, orientation: "v", bgcolor: "rgba(0,0,0,0)" },
    },
  );
}
