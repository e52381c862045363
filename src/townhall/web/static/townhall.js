// Townhall portal enhancements. Every page is complete without this file.
//  - <time class="local" datetime="…"> shows the time in the browser's own zone,
//    unless the user chose a zone in their account (the server already used it).
//  - a form with data-confirm asks before it is sent.
(function () {
  "use strict";

  function localiseTimes() {
    if (document.body.getAttribute("data-zone-chosen") === "yes") {
      return;
    }
    var format;
    try {
      format = new Intl.DateTimeFormat(undefined, {
        weekday: "short", day: "numeric", month: "short", year: "numeric",
        hour: "2-digit", minute: "2-digit", timeZoneName: "short"
      });
    } catch (error) {
      return;
    }
    var times = document.querySelectorAll("time.local[datetime]");
    for (var i = 0; i < times.length; i++) {
      var element = times[i];
      var moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment.getTime())) {
        continue;
      }
      if (!element.title) {
        element.title = element.textContent;
      }
      element.textContent = format.format(moment);
    }
  }

  function confirmForms() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form && form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
      }
    });
  }

  localiseTimes();
  confirmForms();
})();
