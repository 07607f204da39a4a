// The run page, live: the API's event stream of the run (through /ui, where the session cookie
// authenticates it) appends timeline rows as events commit, and the panels above (status, trace
// tree, sandbox outputs, decisions) are re-read from the server after each burst of events.
// Text goes in with textContent only: nothing a run says is ever parsed as HTML.
(function () {
  "use strict";
  const panels = document.getElementById("panels");
  if (!panels) return;
  const runId = panels.dataset.run;
  const body = document.getElementById("timeline");
  const live = document.getElementById("live");
  let pending = null;

  function refresh() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      if (window.htmx) {
        window.htmx.ajax("GET", "/ui/runs/" + encodeURIComponent(runId) + "/panels",
                         {target: "#panels", swap: "innerHTML"});
      }
    }, 150);
  }

  function ms(v) { return v === null || v === undefined ? "" : Math.round(v) + " ms"; }
  function cost(v) {
    return v === null || v === undefined ? "" : "$" + v.toFixed(6).replace(/\.?0+$/, "");
  }

  function append(row) {
    if (body.querySelector('tr[data-seq="' + row.seq + '"]')) return;
    const tr = document.createElement("tr");
    tr.dataset.seq = String(row.seq);
    tr.className = "new";
    const tokens = row.tokens_in || row.tokens_out ? row.tokens_in + "/" + row.tokens_out : "";
    const cells = [String(row.seq), ms(row.t_ms), row.kind, row.key || "", ms(row.took_ms),
                   tokens, cost(row.cost_usd), row.decision || "", row.detail || ""];
    cells.forEach(function (text, i) {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === cells.length - 1) td.className = "cut";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }

  if (panels.dataset.finished === "yes") return;
  const source = new EventSource("/ui/runs/" + encodeURIComponent(runId) + "/events");
  source.addEventListener("event", function (e) {
    append(JSON.parse(e.data));
    refresh();
  });
  source.addEventListener("end", function () {
    source.close();
    live.textContent = "finished";
    live.className = "live over";
    refresh();
  });
})();
