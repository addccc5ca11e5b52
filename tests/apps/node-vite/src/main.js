import { describe } from "./route.js";

document.getElementById("route").textContent = describe(location.pathname);
