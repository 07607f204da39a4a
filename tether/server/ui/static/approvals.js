// The approvals inbox re-reads itself every 3 s (htmx). A refresh that arrives while the
// pointer is on the table, or a control in it has the keyboard focus, is dropped (the next one
// is tried 3 s later): otherwise an approval that goes away above the one being approved —
// decided elsewhere, or its run cancelled at a moment a hostile run can choose — slides the
// next row's Approve button under a click already on its way.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (e) {
    const table = e.detail.target;
    if (!table || !table.matches || !table.matches("table.approvals")) return;
    if (table.matches(":hover") || table.contains(document.activeElement)) {
      e.detail.shouldSwap = false;
    }
  });
})();
