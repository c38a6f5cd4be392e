# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# iovaq_read_version(<header> <out-var>): set <out-var> to "MAJOR.MINOR.PATCH" parsed from the
# IOVAQ_VERSION_MAJOR/_MINOR/_PATCH macros of <header>, and re-run the configure step when the
# header changes.

function(iovaq_read_version header out)
	file(STRINGS "${header}" _lines
		REGEX "^#[ \t]*define[ \t]+IOVAQ_VERSION_(MAJOR|MINOR|PATCH)[ \t]+[0-9]+")
	set(_version "")
	foreach(_part MAJOR MINOR PATCH)
		if(NOT _lines MATCHES "IOVAQ_VERSION_${_part}[ \t]+([0-9]+)")
			message(FATAL_ERROR "${header}: no IOVAQ_VERSION_${_part} definition")
		endif()
		list(APPEND _version ${CMAKE_MATCH_1})
	endforeach()
	list(JOIN _version "." _version)
	set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${header}")
	set(${out} "${_version}" PARENT_SCOPE)
endfunction()
