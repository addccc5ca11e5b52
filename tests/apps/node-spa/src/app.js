// The client-side router: any path is a route of this one page.
document.getElementById("route").textContent = "route " + location.pathname;
