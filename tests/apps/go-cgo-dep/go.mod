module example.com/cgodep

go 1.19

require example.com/cnum v1.0.0
