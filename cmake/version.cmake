# The version lives in include/memvisor/version.h alone; read it from
# there (before project(), which takes it) so the header, the soname, the
# pkg-config file and the CMake package can never disagree.
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/../include/memvisor/version.h
     mv_version_lines REGEX "^#define MV_VERSION_(MAJOR|MINOR|PATCH) ")
foreach(part MAJOR MINOR PATCH)
  if(NOT mv_version_lines MATCHES "MV_VERSION_${part} ([0-9]+)")
    message(FATAL_ERROR "version.h: no MV_VERSION_${part}")
  endif()
  set(MV_VERSION_${part} ${CMAKE_MATCH_1})
endforeach()
set(MV_VERSION ${MV_VERSION_MAJOR}.${MV_VERSION_MINOR}.${MV_VERSION_PATCH})
# The soname's version (docs/api.md, "Versions and the ABI"): the major
# number from 1.0 on; before it every minor release may change the ABI,
# so 0.MINOR.
if(MV_VERSION_MAJOR EQUAL 0)
  set(MV_SOVERSION 0.${MV_VERSION_MINOR})
else()
  set(MV_SOVERSION ${MV_VERSION_MAJOR})
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/../include/memvisor/version.h)
