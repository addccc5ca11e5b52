# Read by bin/detect and bin/build, which must agree: where a committed site's generator or
# GitHub Pages put it (and Apache's document roots), and the web servers' configurations that
# pallet-static serves beside the site without reading.
SITE_DIRS=(dist build _site site out docs www htdocs public_html)
SERVER_CONFIGS=(nginx.conf httpd.conf .htaccess Caddyfile)
