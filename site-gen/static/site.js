// The benchmark site's only script: filters on the all-series page, sortable tables, "changes only"
// toggles, and the selector of any two commits on the compare page. Every page reads without
// it; it only adds to them. No request leaves the site: the selector's data are script files
// beside the pages, which load from disk as well as from a server.
"use strict";

(function () {
  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  function reveal() {
    all("[hidden].js-only, form#filters, form#picker").forEach(function (el) {
      el.hidden = false;
    });
  }

  // All series: filter rows by workload, metric, verdict and scenario text. Thousands of rows:
  // their attributes are read once, and only rows and groups whose state changes are touched.
  function filters() {
    var form = document.getElementById("filters");
    if (!form) return;
    var groups = all("[data-group]").map(function (el) {
      return { el: el, shown: -1 };
    });
    var rows = [];
    groups.forEach(function (group, g) {
      all("tr[data-workload]", group.el).forEach(function (row) {
        rows.push({
          el: row,
          group: g,
          workload: row.getAttribute("data-workload").toLowerCase(),
          metric: row.getAttribute("data-metric").toLowerCase(),
          verdict: row.getAttribute("data-verdict"),
          scenario: row.getAttribute("data-scenario").toLowerCase(),
          hidden: false
        });
      });
    });
    var count = document.getElementById("filter-count");
    function apply() {
      var want = {};
      all("[data-filter]", form).forEach(function (el) {
        want[el.getAttribute("data-filter")] = el.value.trim().toLowerCase();
      });
      var shown = 0;
      var perGroup = groups.map(function () {
        return 0;
      });
      rows.forEach(function (row) {
        var ok =
          (!want.workload || row.workload === want.workload) &&
          (!want.metric || row.metric === want.metric) &&
          (!want.verdict || row.verdict === want.verdict) &&
          (!want.text || row.scenario.indexOf(want.text) >= 0);
        if (row.hidden === ok) {
          row.hidden = !ok;
          row.el.hidden = !ok;
        }
        if (ok) {
          shown += 1;
          perGroup[row.group] += 1;
        }
      });
      groups.forEach(function (group, g) {
        var visible = perGroup[g] > 0 ? 1 : 0;
        if (group.shown !== visible) {
          group.shown = visible;
          group.el.hidden = !visible;
        }
      });
      if (count) count.textContent = shown + " of " + rows.length + " series";
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
    });
    apply();
  }

  // Tables with class "sortable": click a header to sort by that column.
  function sortable() {
    all("table.sortable").forEach(function (table) {
      all("thead th", table).forEach(function (th, column) {
        th.setAttribute("aria-sort", "none");
        th.addEventListener("click", function () {
          var body = table.tBodies[0];
          var ascending = th.getAttribute("aria-sort") !== "ascending";
          all("thead th", table).forEach(function (other) {
            other.setAttribute("aria-sort", "none");
          });
          th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
          var rows = Array.prototype.slice.call(body.rows);
          function key(row) {
            var cell = row.cells[column];
            if (!cell) return "";
            var data = cell.getAttribute("data-sort");
            var text = data !== null ? data : cell.textContent.trim();
            var number = parseFloat(text.replace("\u2212", "-").replace(/[^0-9eE.+-]/g, ""));
            return isNaN(number) ? text.toLowerCase() : number;
          }
          rows.sort(function (a, b) {
            var x = key(a), y = key(b);
            var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
            return ascending ? order : -order;
          });
          rows.forEach(function (row) {
            body.appendChild(row);
          });
        });
      });
    });
  }

  // Checkboxes that hide unchanged rows of a table.
  function toggles() {
    all("input[data-toggle=changes-only]").forEach(function (box) {
      var table = document.getElementById(box.getAttribute("data-target"));
      if (!table) return;
      box.addEventListener("change", function () {
        table.classList.toggle("changes-only", box.checked);
      });
    });
  }

  function element(tag, text, className) {
    var el = document.createElement(tag);
    if (text !== undefined && text !== null) el.textContent = text;
    if (className) el.className = className;
    return el;
  }

  function number(v) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2013";
    if (v === 0) return "0";
    var digits = Math.max(0, Math.min(6, 3 - Math.floor(Math.log10(Math.abs(v)))));
    return v.toFixed(digits);
  }

  function percent(v) {
    if (!isFinite(v)) return "\u2013";
    var p = (v * 100).toFixed(Math.abs(v) >= 1 ? 0 : 1);
    return (v > 0 ? "+" : v < 0 ? "\u2212" : "\u00b1") + p.replace("-", "") + "%";
  }

  // Compare page: any two commits, from data/<sha>.js files.
  function picker() {
    var form = document.getElementById("picker");
    if (!form || !window.benchCommits || !window.benchSeries) return;
    var a = document.getElementById("pick-a");
    var b = document.getElementById("pick-b");
    var onlyChanges = document.getElementById("pick-changes");
    var out = document.getElementById("pick-out");
    window.benchCommits.forEach(function (c) {
      a.appendChild(element("option", c.label)).value = c.file;
      b.appendChild(element("option", c.label)).value = c.file;
    });
    if (window.benchCommits.length < 2) {
      out.appendChild(element("p", "Fewer than two commits are benchmarked.", "muted"));
      return;
    }
    a.selectedIndex = 1;
    b.selectedIndex = 0;
    var loading = {};
    function shaOf(file) {
      for (var i = 0; i < window.benchCommits.length; i++) {
        if (window.benchCommits[i].file === file) return window.benchCommits[i].sha;
      }
      return null;
    }
    function load(file, then) {
      var sha = shaOf(file);
      window.benchData = window.benchData || {};
      if (window.benchData[sha]) return then();
      if (loading[file]) return loading[file].push(then);
      loading[file] = [then];
      var script = document.createElement("script");
      script.src = "../data/" + file + ".js";
      script.onload = function () {
        var waiting = loading[file];
        delete loading[file];
        waiting.forEach(function (f) {
          f();
        });
      };
      document.head.appendChild(script);
    }
    function render() {
      var shaA = shaOf(a.value), shaB = shaOf(b.value);
      var da = {}, db = {};
      (window.benchData[shaA] || []).forEach(function (p) {
        da[p[0]] = p;
      });
      (window.benchData[shaB] || []).forEach(function (p) {
        db[p[0]] = p;
      });
      var rows = [];
      Object.keys(db).forEach(function (k) {
        var pa = da[k], pb = db[k];
        if (!pa || !pa[1]) return;
        var change = pb[1] / pa[1] - 1;
        var apart = pb[2] > pa[3] || pb[3] < pa[2];
        if (onlyChanges.checked && Math.abs(change) < 0.01) return;
        rows.push({ s: window.benchSeries[k], a: pa, b: pb, change: change, apart: apart });
      });
      rows.sort(function (x, y) {
        return (y.apart - x.apart) || Math.abs(y.change) - Math.abs(x.change);
      });
      out.textContent = "";
      if (rows.length === 0) {
        out.appendChild(element("p", "No series differs by more than 1% between these commits.", "muted"));
        return;
      }
      var table = element("table", null, "points");
      var head = table.createTHead().insertRow();
      ["scenario", "metric", "A median [95% CI]", "B median [95% CI]", "B/A", "intervals"].forEach(function (h, i) {
        head.appendChild(element("th", h, i >= 2 && i <= 4 ? "num" : ""));
      });
      var body = table.createTBody();
      rows.forEach(function (r) {
        var tr = body.insertRow();
        var link = element("a", r.s.scenario);
        link.href = "../" + r.s.href;
        tr.insertCell().appendChild(link);
        tr.insertCell().textContent = r.s.metric + (r.s.machine ? " (" + r.s.machine + ")" : "") + (r.s.better === "higher" ? " \u2191" : " \u2193");
        [r.a, r.b].forEach(function (p) {
          var cell = tr.insertCell();
          cell.className = "num";
          cell.textContent = number(p[1]) + " " + r.s.unit + " [" + number(p[2]) + " \u2013 " + number(p[3]) + "]";
        });
        var c = tr.insertCell();
        c.className = "num";
        c.textContent = percent(r.change);
        var worse = (r.change > 0) === (r.s.better === "lower");
        var verdict = tr.insertCell();
        verdict.appendChild(
          r.apart
            ? element("span", (worse ? "\u25b2 worse" : "\u25c6 better") + ", apart", "badge " + (worse ? "regression" : "improvement"))
            : element("span", "overlap", "badge unchanged")
        );
      });
      out.appendChild(table);
    }
    function update() {
      out.textContent = "Loading\u2026";
      load(a.value, function () {
        load(b.value, render);
      });
    }
    form.addEventListener("change", update);
    update();
  }

  function start() {
    reveal();
    filters();
    sortable();
    toggles();
    picker();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
