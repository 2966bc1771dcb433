# Run by `cmake --install` (install(CODE) in CMakeLists.txt): writes the
# systemd units and erpq.env.example with the paths of the prefix being
# installed into (CMAKE_INSTALL_PREFIX here is the install-time prefix,
# --prefix included). /usr installs keep their settings in /etc, as
# GNUInstallDirs does; any other prefix in <prefix>/etc.
set(P "${CMAKE_INSTALL_PREFIX}")
if(DEFINED ENV{DESTDIR})
  set(D "$ENV{DESTDIR}")
else()
  set(D "")
endif()
set(CMAKE_INSTALL_FULL_BINDIR "${P}/${ERPQ_BINDIR}")
set(CMAKE_INSTALL_FULL_DATADIR "${P}/${ERPQ_DATADIR_REL}")
if(P STREQUAL "/usr")
  set(CMAKE_INSTALL_FULL_SYSCONFDIR "/etc")
else()
  set(CMAKE_INSTALL_FULL_SYSCONFDIR "${P}/etc")
endif()
if(IS_ABSOLUTE "${ERPQ_UNITDIR}")
  set(unitdir "${ERPQ_UNITDIR}")
else()
  set(unitdir "${P}/${ERPQ_UNITDIR}")
endif()
foreach(unit erpq-worker.service erpq-api.service erpq-producer@.service erpq-fee-run.service
             erpq-fee-run.timer)
  configure_file("${ERPQ_SRC}/systemd/${unit}.in" "${D}${unitdir}/${unit}" @ONLY)
  message(STATUS "Installing: ${D}${unitdir}/${unit}")
endforeach()
configure_file("${ERPQ_SRC}/systemd/erpq.env.example.in"
               "${D}${CMAKE_INSTALL_FULL_SYSCONFDIR}/erpq/erpq.env.example" @ONLY)
message(STATUS "Installing: ${D}${CMAKE_INSTALL_FULL_SYSCONFDIR}/erpq/erpq.env.example")
