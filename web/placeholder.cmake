# Writes the files the binary serves when the dashboard could not be built (no node or no
# web/node_modules): a page that says so, and empty script and style sheets.
file(MAKE_DIRECTORY ${DIR})
file(WRITE ${DIR}/index.html "<!doctype html><title>Berth</title><p>This berth binary was built \
without its dashboard: install Node.js and npm, then run scripts/build.sh (it runs npm ci in \
web/).</p>\n")
file(WRITE ${DIR}/app.js "")
file(WRITE ${DIR}/app.css "")
