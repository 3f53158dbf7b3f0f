package models

// FileSHA256 is fileSHA256, for the external tests.
var FileSHA256 = fileSHA256
