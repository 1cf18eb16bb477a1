// Shared behaviour of every page (r1interp report site): sortable tables and row filters.
// Plain JS, no dependencies; pages stay readable without it (tables are rendered server-side).
(function () {
  "use strict";

  // Sort a table by a column on header click: numbers by their data-v value, text alphabetically.
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var asc = th.getAttribute("data-dir") !== "asc";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("data-dir"); });
    th.setAttribute("data-dir", asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[col];
      if (!cell) return { n: null, s: "" };
      var v = cell.getAttribute("data-v");
      return { n: v === null ? null : Number(v), s: cell.textContent.trim().toLowerCase() };
    }
    rows.sort(function (a, b) {
      var ka = key(a), kb = key(b), r;
      if (ka.n !== null && kb.n !== null) r = ka.n - kb.n;
      else if (ka.n !== null) return -1;  // rows without a value go last either way
      else if (kb.n !== null) return 1;
      else r = ka.s < kb.s ? -1 : ka.s > kb.s ? 1 : 0;
      return asc ? r : -r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.title = "sort";
      th.addEventListener("click", function () { sortBy(table, col, th); });
    });
  });

  // Filter rows of the table named by data-table: every whitespace-separated term must appear in the row.
  document.querySelectorAll("input.filter[data-table]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    if (!table) return;
    var counter = document.createElement("span");
    counter.className = "muted filter-count";
    input.insertAdjacentElement("afterend", counter);
    function run() {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0, rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (row) {
        var text = row.textContent.toLowerCase();
        var ok = terms.every(function (t) { return text.indexOf(t) >= 0; });
        row.style.display = ok ? "" : "none";
        if (ok) shown++;
      });
      counter.textContent = shown + " of " + rows.length + " rows";
    }
    input.addEventListener("input", run);
    run();
  });
})();
