module example.com/svc

go 1.19

require example.com/lib v0.0.0
