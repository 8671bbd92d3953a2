// The live feed: the insights SSE stream read with fetch (so the bearer token goes in a
// header, which EventSource cannot send), resumed from the last event id after a drop. Each
// bucket event tells the open view that its figures changed; nothing polls.

import { INSIGHTS, headers } from "./api.js";

export class Feed {
  constructor({ onChange, onState }) {
    this.onChange = onChange;
    this.onState = onState;
    this.controller = null;
    this.lastId = null;
  }

  follow(experimentIds) {
    const key = experimentIds.join("\n");
    if (this.controller && this.key === key) return;
    this.stop();
    this.key = key;
    this.lastId = null;
    this.controller = new AbortController();
    this.run(experimentIds, this.controller.signal);
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  async run(experimentIds, signal) {
    const query = new URLSearchParams({ time_bucket: "minute", metrics: "volume" });
    for (const id of experimentIds) query.append("experiment_ids", id);
    let wait = 500;
    while (!signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (this.lastId) extra["Last-Event-ID"] = this.lastId;
        const response = await fetch(`${INSIGHTS}/stream?${query}`, { headers: headers(extra), signal });
        if (!response.ok) throw new Error(`feed answered ${response.status}`);
        this.onState("live");
        wait = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            this.dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
      }
      this.onState("offline");
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 15_000);
    }
  }

  dispatch(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const [field, ...rest] = line.split(":");
      const value = rest.join(":").replace(/^ /, "");
      if (field === "id") this.lastId = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (event === "bucket" || event === "reset") this.onChange(event, data.length ? JSON.parse(data.join("\n")) : null);
  }
}
