"use strict";
document.getElementById("clock").textContent = "Page loaded at " + new Date().toLocaleTimeString();
