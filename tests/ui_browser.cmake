# The dashboard in Debian's chromium, driven by puppeteer-core (web/test/browser.mjs) against a
# `berth serve --dev` it starts; screenshots of every view land in BUILD/ui-screenshots.
if(TARGET berth AND BERTH_WEB_BUILT)
  add_test(NAME ui_browser_test
    COMMAND ${BERTH_NODE} ${CMAKE_SOURCE_DIR}/web/test/browser.mjs
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(ui_browser_test PROPERTIES TIMEOUT 300
    ENVIRONMENT "BERTH_BINARY=$<TARGET_FILE:berth>;BERTH_UI_ARTIFACTS=${CMAKE_BINARY_DIR}/ui-screenshots")
endif()
