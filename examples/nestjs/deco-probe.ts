import 'reflect-metadata'
import { Controller, Get, Module } from '@nestjs/common'
@Controller('v1')
class C {
  @Get('x') x() {
    return { ok: 1 }
  }
}
@Module({ controllers: [C] })
class M {}
console.log(Reflect.getMetadata('path', C), typeof M)
